/**
 * The cloud model platforms end to end, with the real opencode CLI: Azure OpenAI behind Microsoft Entra (client
 * credentials with the job's token as a federated client assertion), through opencode's OpenAI-compatible provider
 * and through its own `azure` provider; and Vertex AI behind Google STS and service account impersonation.
 *
 * The clouds are emulated on loopback (test/support/fake-entra.ts, fake-google-sts.ts, fake-iam-credentials.ts); the
 * model servers accept only tokens the emulated cloud issued for them. The real Entra, STS, IAM, Azure OpenAI and
 * Vertex AI are not reached.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { AZURE_AD_TOKEN_EXCHANGE, COGNITIVE_SERVICES, startFakeEntra, type FakeEntra } from "../support/fake-entra.js";
import { startFakeGoogleSts, type FakeGoogleSts, type WorkloadIdentityProvider } from "../support/fake-google-sts.js";
import { startFakeIamCredentials, type FakeIamCredentials } from "../support/fake-iam-credentials.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { createSandbox, type RunResult, type Sandbox } from "../support/opencode-cli.js";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT = "0b8f2a4c-1d3e-4f5a-8b6c-7d9e0f1a2b3c";
const SUBJECT = "repo:acme/app:ref:refs/heads/main";
const SA = "vertex-ci@acme-prod.iam.gserviceaccount.com";
const VERTEX_PATH = "/v1/projects/acme-prod/locations/us-central1/endpoints/openapi";
const GEMINI = "google/gemini-2.0-flash-001";

let ci: CiIssuer;
let entra: FakeEntra;
let sts: FakeGoogleSts;
let iam: FakeIamCredentials;
let github: WorkloadIdentityProvider;
let azureModel: ModelServer;
let vertexModel: ModelServer;
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  ci = await startCiIssuer();
  entra = await startFakeEntra({
    tenants: [
      {
        tenantId: TENANT,
        applications: [
          {
            clientId: CLIENT,
            federatedIdentityCredentials: [{ name: "main", issuer: ci.issuer, subject: SUBJECT, audiences: [AZURE_AD_TOKEN_EXCHANGE] }],
          },
        ],
      },
    ],
  });
  github = {
    projectNumber: "123456789012",
    poolId: "ci-pool",
    providerId: "github",
    issuerUri: ci.issuer,
    attributeMapping: (c) => ({ "google.subject": c["sub"] as string, "attribute.repository": c["repository"] as string }),
    attributeCondition: (c) => c["repository_owner"] === "acme",
  };
  sts = await startFakeGoogleSts({ providers: [github] });
  iam = await startFakeIamCredentials({
    sts,
    serviceAccounts: [{ email: SA, workloadIdentityUsers: [sts.principalSetOf(github, "repository", "acme/app")] }],
  });
  // Azure names models by deployment: opencode's azure provider hides models.dev's retired ids (gpt-4.1 among them).
  azureModel = await startModelServer({
    pathPrefix: "/openai/v1",
    models: ["gpt-4.1", "ci-deployment"],
    validateToken: (t) => entra.isValidAccessToken(t, COGNITIVE_SERVICES),
  });
  vertexModel = await startModelServer({ pathPrefix: VERTEX_PATH, models: [GEMINI], validateToken: (t) => iam.isValidAccessToken(t, SA) });
}, 60_000);

afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await Promise.all([azureModel?.close(), vertexModel?.close(), iam?.close(), sts?.close(), entra?.close()]);
  await ci?.close();
});

const githubEnv = () => ({
  ACTIONS_ID_TOKEN_REQUEST_URL: ci.requestUrl,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken,
  OPENCODE_CI_AUTH_LOG_LEVEL: "trace",
});

async function run(config: unknown, model: string): Promise<{ result: RunResult; logs: string }> {
  const sandbox = await createSandbox(githubEnv());
  sandboxes.push(sandbox);
  await sandbox.writeConfig(config);
  const result = await sandbox.run(["run", "--print-logs", "--log-level", "DEBUG", "--model", model, "Say hello"], { timeoutMs: 240_000 });
  return { result, logs: await sandbox.readLogs() };
}

function expectNoSecrets(texts: string[], secrets: string[]): void {
  expect(secrets.length).toBeGreaterThan(2);
  for (const text of texts) for (const secret of secrets) expect(text.includes(secret), "a secret leaked into output").toBe(false);
}

const entraBlock = () => ({
  issuer: entra.authority(TENANT),
  clientId: CLIENT,
  authFlow: "client_credentials",
  scopes: [`${COGNITIVE_SERVICES}/.default`],
  subjectTokenSource: { type: "github_actions" },
});

describe("Azure OpenAI behind Entra", () => {
  it.each([
    ["its OpenAI-compatible v1 endpoint (@ai-sdk/openai-compatible)", "azure-openai", "gpt-4.1", () => azureModel.baseURL],
    // The azure provider's default: the Responses API.
    [
      "opencode's azure provider (@ai-sdk/azure), with no api-key header on the wire",
      "azure",
      "ci-deployment",
      () => azureModel.baseURL,
      {},
    ],
  ])(
    "%s",
    async (_label, providerId, model, baseURL, extra: Record<string, unknown> = {}) => {
      const before = azureModel.requests.length;
      const grants = entra.requests.filter((r) => r.method === "POST").length;
      const config = {
        $schema: "https://opencode.ai/config.json",
        plugin: ["opencode-ci-auth"],
        provider: {
          [providerId]: {
            name: "Azure OpenAI",
            models: { [model]: { name: model } },
            options: { baseURL: baseURL(), ...extra, oauth2: entraBlock() },
          },
        },
      };
      const { result, logs } = await run(config, `${providerId}/${model}`);
      expect(result.code, result.stderr.slice(-3000)).toBe(0);
      expect(result.stdout).toContain("Hello from the mock model");
      const requests = azureModel.requests.slice(before);
      expect(requests.length).toBeGreaterThanOrEqual(1);
      for (const r of requests) {
        expect(r.status, `${r.method} ${r.path}`).toBe(200);
        const token = r.authorization?.replace(/^Bearer /, "") ?? "";
        expect(
          await entra.isValidAccessToken(token, COGNITIVE_SERVICES),
          "every request carries an Entra token for Cognitive Services",
        ).toBe(true);
        expect(r.headerNames).not.toContain("api-key");
      }
      expect(entra.requests.filter((r) => r.method === "POST").length - grants).toBe(1);
      expectNoSecrets([result.stdout, result.stderr, logs], [...ci.tokensIssued, ...entra.issuedTokens.keys(), ci.requestToken]);
    },
    300_000,
  );
});

describe("Vertex AI behind Google STS and a service account", () => {
  it("Vertex AI's OpenAI-compatible endpoint gets the service account's token; STS and IAM are asked once", async () => {
    const before = vertexModel.requests.length;
    const [stsBefore, iamBefore] = [sts.requests.length, iam.requests.length];
    const config = {
      $schema: "https://opencode.ai/config.json",
      plugin: ["opencode-ci-auth"],
      provider: {
        vertex: {
          name: "Vertex AI",
          models: { [GEMINI]: { name: "Gemini" } },
          options: {
            baseURL: vertexModel.baseURL,
            oauth2: {
              tokenEndpoint: sts.tokenEndpoint,
              authFlow: "token_exchange",
              tokenExchangeAudience: sts.audienceOf(github),
              subjectTokenSource: { type: "github_actions" },
              serviceAccountImpersonation: { email: SA, endpoint: iam.url },
            },
          },
        },
      },
    };
    const { result, logs } = await run(config, `vertex/${GEMINI}`);
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    const requests = vertexModel.requests.slice(before);
    expect(requests.length).toBeGreaterThanOrEqual(1);
    for (const r of requests) {
      expect(r.status).toBe(200);
      expect(await iam.isValidAccessToken(r.authorization?.replace(/^Bearer /, "") ?? "", SA)).toBe(true);
    }
    expect([sts.requests.length - stsBefore, iam.requests.length - iamBefore]).toEqual([1, 1]);
    expectNoSecrets(
      [result.stdout, result.stderr, logs],
      [...ci.tokensIssued, ...sts.federatedTokens.keys(), ...iam.issuedTokens.keys(), ci.requestToken],
    );
  }, 300_000);
});
