/**
 * Google STS token exchange and service account impersonation, against the loopback emulations of STS and IAM
 * Credentials (test/support/fake-google-sts.ts, fake-iam-credentials.ts: STS checks the provider, the token's issuer,
 * signature and audience, and the attribute condition; IAM checks the federated Bearer and the principal's
 * roles/iam.workloadIdentityUser). The real Google services are not reached.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { parseOAuth2Block } from "../../src/config/parse.js";
import { oauth2Schema, type OAuth2Input } from "../../src/config/schema.js";
import { GrantRefusedError, ImpersonationError } from "../../src/errors.js";
import { inspectProvider } from "../../src/inspection.js";
import { TokenProvider } from "../../src/token-provider.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import {
  CLOUD_PLATFORM_SCOPE,
  STS_TOKEN_TYPE_ACCESS_TOKEN,
  STS_TOKEN_TYPE_JWT,
  startFakeGoogleSts,
  type FakeGoogleSts,
  type WorkloadIdentityProvider,
} from "../support/fake-google-sts.js";
import { startFakeIamCredentials, type FakeIamCredentials } from "../support/fake-iam-credentials.js";
import { captureLogger, expectNoLeak, rejectionOf } from "../support/harness.js";

const SA = "vertex-ci@acme-prod.iam.gserviceaccount.com";
const SA_UNBOUND = "unbound@acme-prod.iam.gserviceaccount.com";
const SUBJECT = "repo:acme/app:ref:refs/heads/main";

let ci: CiIssuer;
let sts: FakeGoogleSts;
let iam: FakeIamCredentials;
let github: WorkloadIdentityProvider;

beforeAll(async () => {
  ci = await startCiIssuer();
  const mapping = (c: Record<string, unknown>) => ({
    "google.subject": c["sub"] as string,
    "attribute.repository": c["repository"] as string,
  });
  github = {
    projectNumber: "123456789012",
    poolId: "ci-pool",
    providerId: "github",
    issuerUri: ci.issuer,
    attributeMapping: mapping,
    attributeCondition: (c) => c["repository_owner"] === "acme",
  };
  sts = await startFakeGoogleSts({ providers: [github] });
  iam = await startFakeIamCredentials({
    sts,
    serviceAccounts: [
      { email: SA, workloadIdentityUsers: [sts.principalSetOf(github, "repository", "acme/app")] },
      { email: SA_UNBOUND, workloadIdentityUsers: [sts.principalSetOf(github, "repository", "acme/other")] },
    ],
  });
});
afterAll(async () => {
  await iam?.close();
  await sts?.close();
  await ci?.close();
});

const githubEnv = () => ({ ACTIONS_ID_TOKEN_REQUEST_URL: ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken });

function block(overrides: Partial<OAuth2Input> = {}): OAuth2Input {
  return {
    tokenEndpoint: sts.tokenEndpoint,
    authFlow: "token_exchange",
    tokenExchangeAudience: sts.audienceOf(github),
    subjectTokenSource: { type: "github_actions" },
    serviceAccountImpersonation: { email: SA, endpoint: iam.url },
    retry: { maxAttempts: 1 },
    ...overrides,
  } as OAuth2Input;
}

function provider(
  overrides: Partial<OAuth2Input> = {},
  options: { claims?: Record<string, unknown>; fetch?: typeof fetch; retries?: number } = {},
) {
  ci.claims = options.claims ?? {};
  const log = captureLogger("trace");
  const config = oauth2Schema.parse(block({ ...overrides, ...(options.retries ? { retry: { maxAttempts: options.retries } } : {}) }));
  return {
    tokens: new TokenProvider("vertex", config, {
      env: githubEnv(),
      logger: log.logger,
      fetch: options.fetch,
      retry: { sleep: async () => undefined },
    }),
    log,
  };
}

describe("the config", () => {
  it("needs no client, and fills in what STS needs: the access-token type, cloud-platform, the provider's default audience", () => {
    const config = oauth2Schema.parse(block({ serviceAccountImpersonation: undefined }));
    expect(config.clientId).toBeUndefined();
    expect(config.requestedTokenType).toBe(STS_TOKEN_TYPE_ACCESS_TOKEN);
    expect(config.scopes).toEqual([CLOUD_PLATFORM_SCOPE]);
    expect(config.subjectTokenSource.audience).toBe(sts.defaultTokenAudience(github));
    expect(config.subjectTokenSource.audience).toBe(`https:${sts.audienceOf(github)}`);
  });

  it("refuses a client id, a provider name that is not one, and impersonation without a Google provider", () => {
    const withClient = parseOAuth2Block("vertex", block({ clientId: "x" }), {});
    expect(!withClient.ok && withClient.error.issues).toEqual([
      { path: "oauth2.clientId", message: "Google STS takes no client: remove clientId (and any client authentication)" },
    ]);
    const pool = parseOAuth2Block(
      "vertex",
      block({ tokenExchangeAudience: "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool" }),
      {},
    );
    expect(!pool.ok && pool.error.issues.map((i) => i.path)).toEqual(["oauth2.tokenExchangeAudience"]);
    const elsewhere = parseOAuth2Block("vertex", block({ tokenExchangeAudience: "urn:example:api" }), {});
    expect(!elsewhere.ok && elsewhere.error.issues.map((i) => i.path)).toEqual(["oauth2.serviceAccountImpersonation"]);
    expect(!pool.ok && pool.error.issues[0]?.message).toContain(
      "is not a Google workload identity provider's full name: //iam.googleapis.com/projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>",
    );
  });
});

describe("STS, then IAM Credentials", () => {
  it("sends STS exactly what Google documents, no client and no Authorization; caches only the service account token", async () => {
    const { tokens, log } = provider();
    const stsBefore = sts.requests.length;
    const token = await tokens.getToken();
    expect(await iam.isValidAccessToken(token.value, SA)).toBe(true);
    // The federated token is not what the provider gets.
    expect(sts.federatedTokens.has(token.value)).toBe(false);
    const [request] = sts.requests.slice(stsBefore);
    expect(request?.paramNames.sort()).toEqual([
      "audience",
      "grant_type",
      "requested_token_type",
      "scope",
      "subject_token",
      "subject_token_type",
    ]);
    expect(request?.params).toMatchObject({
      audience: sts.audienceOf(github),
      scope: CLOUD_PLATFORM_SCOPE,
      requested_token_type: STS_TOKEN_TYPE_ACCESS_TOKEN,
      subject_token_type: STS_TOKEN_TYPE_JWT,
    });
    expect(request?.authorization).toBeUndefined();
    // generateAccessToken: the federated token as Bearer, { scope, lifetime }.
    const call = iam.requests.at(-1);
    expect(call?.body).toEqual({ scope: [CLOUD_PLATFORM_SCOPE], lifetime: "3600s" });
    expect(token.expirySource).toBe("expire_time");
    expect(token.expiresAt - token.issuedAt).toBeLessThanOrEqual(3600_000);
    expect(token.expiresAt - token.issuedAt).toBeGreaterThan(3500_000);
    // Cached: a second call goes to neither service.
    const counts = [sts.requests.length, iam.requests.length];
    expect(await tokens.getToken()).toBe(token);
    expect([sts.requests.length, iam.requests.length]).toEqual(counts);
    expectNoLeak(
      [log.text()],
      [
        { label: "service account token", value: token.value },
        ...[...sts.federatedTokens.keys()].map((value, i) => ({ label: `federated token ${i}`, value })),
      ],
    );
  });

  it("asks STS for cloud-platform whatever the final token's scopes, and IAM for those", async () => {
    const scopes = ["https://www.googleapis.com/auth/cloud-platform.read-only"];
    const { tokens } = provider({ scopes, serviceAccountImpersonation: { email: SA, endpoint: iam.url } });
    const stsBefore = sts.requests.length;
    await tokens.getToken();
    expect(sts.requests[stsBefore]?.params["scope"]).toBe(CLOUD_PLATFORM_SCOPE);
    expect(iam.requests.at(-1)?.body).toEqual({ scope: scopes, lifetime: "3600s" });
  });

  it("the job's token-endpoint allow-list covers the IAM endpoint, which receives the federated token", () => {
    const lists = { OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: sts.tokenEndpoint };
    const refused = parseOAuth2Block("vertex", block(), lists);
    expect(!refused.ok && refused.error.issues.map((i) => i.path)).toEqual(["oauth2.serviceAccountImpersonation.endpoint"]);
    expect(parseOAuth2Block("vertex", block(), { OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: `${sts.tokenEndpoint},${iam.url}` }).ok).toBe(
      true,
    );
  });

  it("without impersonation, the federated token itself is the access token", async () => {
    const { tokens } = provider({ serviceAccountImpersonation: undefined });
    const token = await tokens.getToken();
    expect(await sts.isValidAccessToken(token.value)).toBe(true);
  });

  it("a transient IAM failure is retried like a grant, inside the same budget", async () => {
    let failures = 1;
    const flaky = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      if (String(input).includes(":generateAccessToken") && failures-- > 0)
        return new Response('{"error":{"code":503,"status":"UNAVAILABLE","message":"backend"}}', { status: 503 });
      return fetch(input, init);
    }) as typeof fetch;
    const { tokens } = provider({}, { fetch: flaky, retries: 3 });
    expect(await iam.isValidAccessToken((await tokens.getToken()).value, SA)).toBe(true);
  });
});

describe("Google's refusals say what to grant to whom", () => {
  it("the attribute condition refuses the job: its claims are named", async () => {
    const { tokens } = provider({}, { claims: { repository: "evil/app", repository_owner: "evil" } });
    const err = await rejectionOf(tokens.getToken());
    expect((err as GrantRefusedError).error).toBe("unauthorized_client");
    expect(err.message).toContain("The given credential is rejected by the attribute condition.");
    expect(err.message).toContain("The provider's attribute condition refused this job (repository evil/app, ref refs/heads/main, sub");
  });

  it("an audience the provider does not allow", async () => {
    const { tokens } = provider({ subjectTokenSource: { type: "github_actions", audience: "https://github.com/acme" } });
    const err = await rejectionOf(tokens.getToken());
    expect((err as GrantRefusedError).error).toBe("invalid_grant");
    expect(err.message).toContain('The pool provider does not accept the token\'s audience "https://github.com/acme"');
  });

  it("the principal lacks roles/iam.workloadIdentityUser: PERMISSION_DENIED names the principal and the service account", async () => {
    const { tokens } = provider({ serviceAccountImpersonation: { email: SA_UNBOUND, endpoint: iam.url } });
    const err = await rejectionOf(tokens.getToken());
    expect(err).toBeInstanceOf(ImpersonationError);
    expect(err.message).toContain(
      `impersonation of ${SA_UNBOUND}: IAM Credentials answered HTTP 403 PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).`,
    );
    expect(err.message).toContain(
      `Grant roles/iam.workloadIdentityUser on the service account ${SA_UNBOUND} to ${sts.principalOf(github, SUBJECT)} (or to a principalSet that contains it)`,
    );
  });

  it("a service account that does not exist (404), and a lifetime above one hour (400)", async () => {
    const missing = await rejectionOf(
      provider({ serviceAccountImpersonation: { email: "nobody@acme-prod.iam.gserviceaccount.com", endpoint: iam.url } }).tokens.getToken(),
    );
    expect(missing.message).toContain("HTTP 404 NOT_FOUND");
    expect(missing.message).toContain(
      "Check serviceAccountImpersonation.email: the service account nobody@acme-prod.iam.gserviceaccount.com does not exist",
    );
    const long = await rejectionOf(
      provider({ serviceAccountImpersonation: { email: SA, endpoint: iam.url, lifetimeSeconds: 7200 } }).tokens.getToken(),
    );
    expect(long.message).toContain("HTTP 400");
    expect(long.message).toContain(
      "lifetimeSeconds above 3600 needs the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension",
    );
  });
});

describe("doctor", () => {
  it("shows the pool principal, the grant and the impersonation step", async () => {
    ci.claims = {};
    const entry = {
      options: {
        baseURL: "https://us-central1-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-central1/endpoints/openapi",
        oauth2: block(),
      },
    };
    const inspection = await inspectProvider("vertex", entry, { env: githubEnv() });
    expect(inspection.steps.map((s) => [s.step, s.status])).toEqual([
      ["config", "ok"],
      ["subject-token", "ok"],
      ["identity", "ok"],
      ["discovery", "ok"],
      ["grant", "ok"],
      ["impersonation", "ok"],
    ]);
    expect(inspection.steps.find((s) => s.step === "identity")?.lines).toContain(`principal  ${sts.principalOf(github, SUBJECT)}`);
    expect(inspection.steps.find((s) => s.step === "impersonation")?.title).toMatch(
      new RegExp(`^service account token for ${SA.replace(/\./g, "\\.")}, valid for (60m 00s|59m \\d\\ds)$`),
    );
  });
});
