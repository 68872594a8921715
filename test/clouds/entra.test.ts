/**
 * authFlow "client_credentials" against the loopback emulation of Microsoft Entra's token endpoint
 * (test/support/fake-entra.ts: it checks the assertion's signature against the CI issuer's keys and its iss, sub
 * and aud against the app's federated identity credentials, and answers with Entra's error shape). The real Entra
 * is not reached. The CI token comes from the fake GitHub token service.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { oauth2Schema, type OAuth2Input } from "../../src/config/schema.js";
import { parseOAuth2Block } from "../../src/config/parse.js";
import { GrantRefusedError } from "../../src/errors.js";
import { inspectProvider } from "../../src/inspection.js";
import { TokenProvider } from "../../src/token-provider.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import {
  AZURE_AD_TOKEN_EXCHANGE,
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  COGNITIVE_SERVICES,
  startFakeEntra,
  type FakeEntra,
} from "../support/fake-entra.js";
import { captureLogger, expectNoLeak, rejectionOf } from "../support/harness.js";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT = "0b8f2a4c-1d3e-4f5a-8b6c-7d9e0f1a2b3c";
const UNREGISTERED = "11111111-2222-3333-4444-555555555555";
const SUBJECT = "repo:acme/app:ref:refs/heads/main";

let ci: CiIssuer;
let entra: FakeEntra;
/** Entra's clock, which a test may move (to make a fresh CI token look expired to it). */
let entraSkewMs = 0;

beforeAll(async () => {
  ci = await startCiIssuer();
  entra = await startFakeEntra({
    now: () => Date.now() + entraSkewMs,
    tenants: [
      {
        tenantId: TENANT,
        displayName: "Contoso",
        domains: ["contoso.onmicrosoft.com"],
        applications: [
          {
            clientId: CLIENT,
            federatedIdentityCredentials: [{ name: "main", issuer: ci.issuer, subject: SUBJECT, audiences: [AZURE_AD_TOKEN_EXCHANGE] }],
          },
        ],
      },
    ],
  });
});
afterAll(async () => {
  await entra?.close();
  await ci?.close();
});

const githubEnv = (extra: NodeJS.ProcessEnv = {}) => ({
  ACTIONS_ID_TOKEN_REQUEST_URL: ci.requestUrl,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken,
  ...extra,
});

function block(overrides: Partial<OAuth2Input> = {}): OAuth2Input {
  return {
    issuer: entra.authority(TENANT),
    clientId: CLIENT,
    authFlow: "client_credentials",
    scopes: [`${COGNITIVE_SERVICES}/.default`],
    subjectTokenSource: { type: "github_actions" },
    retry: { maxAttempts: 1 },
    ...overrides,
  } as OAuth2Input;
}

function provider(overrides: Partial<OAuth2Input> = {}, claims?: Record<string, unknown>) {
  ci.claims = claims ?? {};
  const log = captureLogger("trace");
  return { tokens: new TokenProvider("azure", oauth2Schema.parse(block(overrides)), { env: githubEnv(), logger: log.logger }), log };
}

describe("the config", () => {
  it("defaults the token's audience to Entra's, api://AzureADTokenExchange", () => {
    expect(oauth2Schema.parse(block()).subjectTokenSource).toEqual({ type: "github_actions", audience: AZURE_AD_TOKEN_EXCHANGE });
    expect(
      oauth2Schema.parse(block({ subjectTokenSource: { type: "github_actions", audience: "https://keycloak.example.com/realms/ci" } }))
        .subjectTokenSource.audience,
    ).toBe("https://keycloak.example.com/realms/ci");
  });

  it("refuses another client authentication beside the assertion, field by field", () => {
    const parsed = parseOAuth2Block("azure", block({ clientSecret: "x", tokenEndpointAuthMethod: "client_secret_post" }), {});
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.issues.map((i) => i.path)).toEqual(["oauth2.clientSecret", "oauth2.tokenEndpointAuthMethod"]);
      expect(parsed.error.issues[0]?.message).toBe(
        'clientSecret is not used with authFlow "client_credentials": the job\'s token authenticates the client (a federated client assertion): remove it',
      );
    }
  });

  it("refuses Entra's common tenant, and a scope without /.default, before anything is sent", () => {
    const parsed = parseOAuth2Block(
      "azure",
      block({ issuer: "https://login.microsoftonline.com/common/v2.0", scopes: ["https://cognitiveservices.azure.com"] }),
      {},
    );
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.issues).toEqual([
        {
          path: "oauth2.issuer",
          message:
            'names the tenant "common", but Entra\'s client credentials need your own tenant (its id or a verified domain) in the URL (AADSTS50059)',
        },
        {
          path: "oauth2.scopes",
          message:
            'Entra\'s client credentials take one scope "<resource>/.default", e.g. ["https://cognitiveservices.azure.com/.default"] for Azure OpenAI',
        },
      ]);
    }
    expect(parseOAuth2Block("azure", block({ issuer: `https://login.microsoftonline.com/${TENANT}/v2.0` }), {}).ok).toBe(true);
  });
});

describe("the grant", () => {
  it("discovery from the tenant, then exactly the five documented parameters; the token is one Entra issued", async () => {
    const { tokens, log } = provider();
    const token = await tokens.getToken();
    expect(await entra.isValidAccessToken(token.value, COGNITIVE_SERVICES)).toBe(true);
    const request = entra.requests.filter((r) => r.method === "POST").at(-1);
    expect(request?.paramNames.sort()).toEqual(["client_assertion", "client_assertion_type", "client_id", "grant_type", "scope"]);
    expect(request?.params).toMatchObject({
      grant_type: "client_credentials",
      client_id: CLIENT,
      scope: `${COGNITIVE_SERVICES}/.default`,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    });
    // The assertion is the job's token, minted for Entra's audience.
    expect(ci.tokensIssued).toContain(request?.params["client_assertion"]);
    expect(ci.requests.filter((r) => r.path === "/_apis/token").at(-1)?.query["audience"]).toBe(AZURE_AD_TOKEN_EXCHANGE);
    expect(token.expirySource).toBe("expires_in");
    expectNoLeak(
      [log.text()],
      [{ label: "access token", value: token.value }, ...ci.tokensIssued.map((value, i) => ({ label: `CI token ${i}`, value }))],
    );
  });

  it("works with an explicit tokenEndpoint too (no discovery)", async () => {
    const { tokens } = provider({ issuer: undefined, tokenEndpoint: entra.tokenEndpoint(TENANT) });
    expect(await entra.isValidAccessToken((await tokens.getToken()).value, COGNITIVE_SERVICES)).toBe(true);
  });
});

describe("Entra's refusals say what to register, from the token's claims", () => {
  it("no credential for this subject (AADSTS700213): the issuer, subject and audience to register, Entra's words kept", async () => {
    const { tokens } = provider({}, { sub: "repo:acme/app:ref:refs/heads/feature" });
    const err = await rejectionOf(tokens.getToken());
    expect(err).toBeInstanceOf(GrantRefusedError);
    const refused = err as GrantRefusedError;
    expect(refused.error).toBe("invalid_client");
    expect(refused.errorDescription).toMatch(
      /^AADSTS700213: No matching federated identity record found for presented assertion subject 'repo:acme\/app:ref:refs\/heads\/feature'\./,
    );
    expect(err.message).toContain(
      `Entra has no federated identity credential for what this job presented: add one to the app registration "${CLIENT}" with issuer "${ci.issuer}", subject "repo:acme/app:ref:refs/heads/feature" and audience "${AZURE_AD_TOKEN_EXCHANGE}", exactly (no wildcards).`,
    );
  });

  it("a credential with another audience (AADSTS700212)", async () => {
    const { tokens } = provider({ subjectTokenSource: { type: "github_actions", audience: "api://other" } });
    const err = await rejectionOf(tokens.getToken());
    expect((err as GrantRefusedError).errorDescription).toMatch(/^AADSTS700212: /);
    expect(err.message).toContain("The federated credential's audience differs from the token's \"api://other\"");
  });

  it("an application unknown in the tenant (AADSTS700016)", async () => {
    const { tokens } = provider({ clientId: UNREGISTERED });
    const err = await rejectionOf(tokens.getToken());
    expect((err as GrantRefusedError).error).toBe("unauthorized_client");
    expect(err.message).toContain(
      `No application with client id "${UNREGISTERED}" in this tenant: check clientId, and the tenant in issuer or tokenEndpoint.`,
    );
  });

  it("an assertion outside its valid time range for Entra (AADSTS700024): check the clock", async () => {
    entraSkewMs = 3_600_000;
    try {
      const { tokens } = provider();
      const err = await rejectionOf(tokens.getToken());
      expect((err as GrantRefusedError).errorDescription).toMatch(/^AADSTS700024: Client assertion is not within its valid time range\./);
      expect(err.message).toContain(
        "The job's token was outside its valid time range when Entra checked it: check the runner's clock, and that the source gives a token that is still valid",
      );
    } finally {
      entraSkewMs = 0;
    }
  });

  it("an unknown tenant fails at discovery, naming Entra's answer", async () => {
    const { tokens } = provider({ issuer: entra.authority("00000000-0000-0000-0000-000000000009") });
    const err = await rejectionOf(tokens.getToken());
    expect(err.message).toContain("discovery at");
    expect(err.message).toContain("answered HTTP 400");
  });
});

describe("doctor", () => {
  it("names the federated identity the app must trust, and runs the grant", async () => {
    ci.claims = {};
    const entry = { options: { baseURL: "https://contoso.openai.azure.com/openai/v1", oauth2: block() } };
    const inspection = await inspectProvider("azure", entry, { env: githubEnv() });
    expect(inspection.steps.map((s) => [s.step, s.status])).toEqual([
      ["config", "ok"],
      ["subject-token", "ok"],
      ["identity", "ok"],
      ["discovery", "ok"],
      ["grant", "ok"],
    ]);
    const identity = inspection.steps.find((s) => s.step === "identity");
    expect(identity?.title).toBe(`federated identity to register on the app ${CLIENT}`);
    expect(identity?.lines).toEqual([`issuer    ${ci.issuer}`, `subject   ${SUBJECT}`, `audience  ${AZURE_AD_TOKEN_EXCHANGE}`]);
  });
});
