/**
 * Proves the loopback cloud fakes behave like the documented services, driven with raw fetch (not the plugin):
 * fake Entra ID (client credentials + federated assertion), fake Google STS and fake IAM Credentials. Subject
 * tokens are real signed JWTs from the fake CI issuer. Wording expectations quote the sources in
 * /work/notes/cloud-research.md.
 */
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startCiIssuer } from "./support/ci-issuer.js";
import type { CiIssuer, MintOptions } from "./support/ci-issuer.js";
import { dotnetTime } from "./support/entra-errors.js";
import { AZURE_AD_TOKEN_EXCHANGE, CLIENT_ASSERTION_TYPE_JWT_BEARER, COGNITIVE_SERVICES, startFakeEntra } from "./support/fake-entra.js";
import type { FakeEntra } from "./support/fake-entra.js";
import {
  CLOUD_PLATFORM_SCOPE,
  STS_GRANT_TYPE,
  STS_TOKEN_TYPE_ACCESS_TOKEN,
  STS_TOKEN_TYPE_JWT,
  startFakeGoogleSts,
} from "./support/fake-google-sts.js";
import type { FakeGoogleSts, WorkloadIdentityProvider } from "./support/fake-google-sts.js";
import { startFakeIamCredentials } from "./support/fake-iam-credentials.js";
import type { FakeIamCredentials } from "./support/fake-iam-credentials.js";
import { startModelServer } from "./support/model-server.js";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT = "0b8f2a4c-1d3e-4f5a-8b6c-7d9e0f1a2b3c";
const SUBJECT = "repo:acme/app:ref:refs/heads/main";
const SA = "vertex-ci@acme-prod.iam.gserviceaccount.com";
const SA_BY_SUBJECT = "by-subject@acme-prod.iam.gserviceaccount.com";
const SA_UNBOUND = "unbound@acme-prod.iam.gserviceaccount.com";

/** A shared clock the tests may move forward; every fake reads it. */
let offsetMs = 0;
const now = (): number => Date.now() + offsetMs;

let ci: CiIssuer;
/** A second issuer whose key is NOT in the JWKS the fakes are told to use for it (unknown kid). */
let stranger: CiIssuer;
let entra: FakeEntra;
let legacyEntra: FakeEntra;
let sts: FakeGoogleSts;
let iam: FakeIamCredentials;
let github: WorkloadIdentityProvider;
let explicitAud: WorkloadIdentityProvider;
let strangerProvider: WorkloadIdentityProvider;

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
  headers: Headers;
}

async function send(url: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as Json, headers: res.headers };
}

function postForm(url: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  return send(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(params),
  });
}

function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return send(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Entra's documented error shape, exactly: every field, the AADSTS prefix and the trailing trace lines.
 * `text` is the whole message, or its beginning when it ends with `…`.
 */
function expectEntraError(answer: Answer, status: number, error: string, code: number, text: string, lineBreak = " "): void {
  expect(answer.status).toBe(status);
  const body = answer.body;
  expect(Object.keys(body).sort()).toEqual([
    "correlation_id",
    "error",
    "error_codes",
    "error_description",
    "error_uri",
    "timestamp",
    "trace_id",
  ]);
  expect(body["error"]).toBe(error);
  expect(body["error_codes"]).toEqual([code]);
  expect(body["error_uri"]).toBe(`https://login.microsoftonline.com/error?code=${code}`);
  expect(body["timestamp"]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$/);
  expect(body["trace_id"]).toMatch(/^[0-9a-f-]{36}$/);
  expect(answer.headers.get("x-ms-request-id")).toBe(body["trace_id"]);
  const br = escapeRegExp(lineBreak);
  const tail = `${br}Trace ID: ${String(body["trace_id"])}${br}Correlation ID: ${escapeRegExp(String(body["correlation_id"]))}${br}Timestamp: ${String(body["timestamp"])}$`;
  const message = text.endsWith("…") ? `${escapeRegExp(text.slice(0, -1))}.*?` : escapeRegExp(text);
  expect(body["error_description"]).toMatch(new RegExp(`^AADSTS${code}: ${message}${tail}`, "s"));
}

function entraParams(assertion: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const params: Record<string, string | undefined> = {
    grant_type: "client_credentials",
    client_id: CLIENT,
    scope: `${COGNITIVE_SERVICES}/.default`,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: assertion,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
}

function mintForEntra(opts: MintOptions = {}): Promise<string> {
  return ci.mint({ aud: AZURE_AD_TOKEN_EXCHANGE, ...opts });
}

beforeAll(async () => {
  [ci, stranger] = await Promise.all([startCiIssuer(), startCiIssuer()]);
  const apps = () => [
    {
      clientId: CLIENT,
      displayName: "opencode-ci",
      federatedIdentityCredentials: [
        { name: "main", issuer: ci.issuer, subject: SUBJECT, audiences: [AZURE_AD_TOKEN_EXCHANGE] },
        { name: "stranger", issuer: stranger.issuer, subject: SUBJECT, audiences: [AZURE_AD_TOKEN_EXCHANGE] },
        { name: "unreachable", issuer: "http://127.0.0.1:1", subject: SUBJECT, audiences: [AZURE_AD_TOKEN_EXCHANGE] },
      ],
    },
  ];
  const tenants = () => [{ tenantId: TENANT, displayName: "Contoso", domains: ["contoso.onmicrosoft.com"], applications: apps() }];
  // The stranger's tokens are checked against ci's keys: same algorithm, different kid.
  const issuerJwksUris = { [stranger.issuer]: ci.jwksUrl };
  [entra, legacyEntra] = await Promise.all([
    startFakeEntra({ tenants: tenants(), issuerJwksUris, now }),
    startFakeEntra({ tenants: tenants(), issuerJwksUris, now, noMatchStyle: "legacy", descriptionLineBreak: "\r\n" }),
  ]);

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
  explicitAud = {
    projectNumber: "123456789012",
    poolId: "ci-pool",
    providerId: "explicit",
    issuerUri: ci.issuer,
    allowedAudiences: ["https://github.com/acme"],
  };
  strangerProvider = {
    projectNumber: "123456789012",
    poolId: "ci-pool",
    providerId: "stranger",
    issuerUri: stranger.issuer,
    jwksUri: ci.jwksUrl,
  };
  const disabled: WorkloadIdentityProvider = {
    projectNumber: "123456789012",
    poolId: "ci-pool",
    providerId: "disabled",
    issuerUri: ci.issuer,
    disabled: true,
  };
  sts = await startFakeGoogleSts({ providers: [github, explicitAud, strangerProvider, disabled], now });
  iam = await startFakeIamCredentials({
    sts,
    now,
    serviceAccounts: [
      { email: SA, workloadIdentityUsers: [sts.principalSetOf(github, "repository", "acme/app")] },
      { email: SA_BY_SUBJECT, workloadIdentityUsers: [sts.principalOf(github, SUBJECT)], lifetimeExtension: true },
      { email: SA_UNBOUND, workloadIdentityUsers: [sts.principalSetOf(github, "repository", "acme/other")] },
    ],
  });
});

afterAll(async () => {
  await Promise.all([iam?.close(), sts?.close(), entra?.close(), legacyEntra?.close()]);
  await Promise.all([ci?.close(), stranger?.close()]);
});

describe("fake Entra ID: discovery", () => {
  it("serves a tenant document under the GUID, also when addressed by a verified domain", async () => {
    for (const segment of [TENANT, "contoso.onmicrosoft.com"]) {
      const doc = await send(entra.discoveryUrl(segment), {});
      expect(doc.status).toBe(200);
      expect(doc.body).toMatchObject({
        issuer: `${entra.url}/${TENANT}/v2.0`,
        token_endpoint: `${entra.url}/${TENANT}/oauth2/v2.0/token`,
        jwks_uri: `${entra.url}/${TENANT}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      });
    }
    expect(entra.issuerOf(TENANT)).toBe(`${entra.url}/${TENANT}/v2.0`);
    expect(entra.authority("contoso.onmicrosoft.com")).toBe(`${entra.url}/contoso.onmicrosoft.com/v2.0`);
  });

  it("answers common with the {tenantid} template issuer, and an unknown tenant with AADSTS90002 invalid_tenant", async () => {
    const common = await send(entra.discoveryUrl("common"), {});
    expect(common.body).toMatchObject({ issuer: `${entra.url}/{tenantid}/v2.0`, token_endpoint: `${entra.url}/common/oauth2/v2.0/token` });
    const unknown = await send(entra.discoveryUrl("00000000-0000-0000-0000-000000000001"), {});
    expectEntraError(
      unknown,
      400,
      "invalid_tenant",
      90002,
      "Tenant '00000000-0000-0000-0000-000000000001' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
    );
  });
});

describe("fake Entra ID: client credentials with a federated assertion", () => {
  it("issues a v1 access token for the resource and records exactly what was sent", async () => {
    const assertion = await mintForEntra();
    const params = entraParams(assertion);
    const answer = await postForm(entra.tokenEndpoint(TENANT), params);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ token_type: "Bearer", expires_in: 3599, ext_expires_in: 3599, access_token: expect.any(String) });
    const token = String(answer.body["access_token"]);
    expect(decodeJwt(token)).toMatchObject({
      aud: COGNITIVE_SERVICES,
      tid: TENANT,
      appid: CLIENT,
      ver: "1.0",
      iss: `https://sts.windows.net/${TENANT}/`,
    });
    expect(entra.requests.at(-1)).toMatchObject({ method: "POST", tenant: TENANT, status: 200, params, paramNames: Object.keys(params) });

    expect(await entra.isValidAccessToken(token, COGNITIVE_SERVICES)).toBe(true);
    expect(await entra.isValidAccessToken(token, "https://management.azure.com")).toBe(false);
    expect(await entra.isValidAccessToken(assertion)).toBe(false);
    entra.revokeAccessToken(token);
    expect(await entra.isValidAccessToken(token)).toBe(false);
  });

  it("accepts the tenant by domain, and its tokens satisfy a model server that checks them", async () => {
    const answer = await postForm(entra.tokenEndpoint("contoso.onmicrosoft.com"), entraParams(await mintForEntra()));
    expect(answer.status).toBe(200);
    const model = await startModelServer({ validateToken: (t) => entra.isValidAccessToken(t, COGNITIVE_SERVICES) });
    try {
      const ok = await fetch(`${model.baseURL}/models`, { headers: { authorization: `Bearer ${String(answer.body["access_token"])}` } });
      const refused = await fetch(`${model.baseURL}/models`, { headers: { authorization: `Bearer ${await mintForEntra()}` } });
      expect([ok.status, refused.status]).toEqual([200, 401]);
    } finally {
      await model.close();
    }
  });

  it("refuses tenants, methods and parameters with the AADSTS code Entra uses", async () => {
    const assertion = await mintForEntra();
    const token = entra.tokenEndpoint(TENANT);
    const cases: Array<[Promise<Answer>, number, string, number, string]> = [
      [
        postForm(entra.tokenEndpoint("00000000-0000-0000-0000-000000000001"), entraParams(assertion)),
        400,
        "invalid_request",
        90002,
        "Tenant '00000000-0000-0000-0000-000000000001' not found.…",
      ],
      [
        postForm(entra.tokenEndpoint("common"), entraParams(assertion)),
        400,
        "invalid_request",
        50059,
        "No tenant-identifying information found in either the request or implied by any provided credentials.",
      ],
      [
        postForm(entra.tokenEndpoint("not_a_tenant"), entraParams(assertion)),
        400,
        "invalid_request",
        900023,
        "Specified tenant identifier 'not_a_tenant' is neither a valid DNS name, nor a valid external domain.",
      ],
      [
        send(token, { method: "GET" }),
        400,
        "invalid_request",
        900561,
        "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
      ],
      [
        postJson(token, entraParams(assertion)),
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'grant_type'.",
      ],
      [
        postForm(token, entraParams(assertion, { grant_type: "password" })),
        400,
        "unsupported_grant_type",
        70003,
        "The app requested an unsupported grant type 'password'.",
      ],
      [
        postForm(token, entraParams(assertion, { client_id: undefined })),
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      ],
      [
        postForm(token, entraParams(assertion, { client_id: "ffffffff-0000-0000-0000-000000000000" })),
        400,
        "unauthorized_client",
        700016,
        "Application with identifier 'ffffffff-0000-0000-0000-000000000000' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
      ],
      [
        postForm(token, entraParams(assertion, { client_secret: "not-a-secret" })),
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided.…",
      ],
      [
        postForm(token, entraParams(assertion, { client_assertion: undefined })),
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      ],
      [
        postForm(token, entraParams(assertion, { client_assertion_type: undefined })),
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_assertion_type'.",
      ],
      [
        postForm(token, entraParams(assertion, { client_assertion_type: "urn:other" })),
        400,
        "invalid_request",
        90100,
        "The 'client_assertion_type' parameter is empty or not valid.",
      ],
      [
        postForm(token, entraParams(assertion, { scope: undefined })),
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'scope'.",
      ],
      [
        postForm(token, entraParams(assertion, { scope: COGNITIVE_SERVICES })),
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope ${COGNITIVE_SERVICES} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      ],
      [
        postForm(token, entraParams(assertion, { scope: `${COGNITIVE_SERVICES}/.default https://graph.microsoft.com/.default` })),
        400,
        "invalid_scope",
        700022,
        "The provided value for the input parameter scope isn't valid because it contains more than one resource.…",
      ],
      [
        postForm(token, entraParams(assertion, { scope: "https://management.azure.com/.default" })),
        400,
        "invalid_resource",
        500011,
        "The resource principal named https://management.azure.com was not found in the tenant named Contoso.…",
      ],
      [postForm(token, entraParams("not-a-jwt")), 400, "invalid_request", 50027, "Invalid JWT token. The token format isn't proper."],
    ];
    for (const [pending, status, error, code, text] of cases) expectEntraError(await pending, status, error, code, text);
  });

  it("matches issuer, subject and audience exactly against the federated credentials", async () => {
    const token = entra.tokenEndpoint(TENANT);
    const other = await ci.mint({ aud: AZURE_AD_TOKEN_EXCHANGE, claims: { iss: "https://token.actions.githubusercontent.com" } });
    expectEntraError(
      await postForm(token, entraParams(other)),
      401,
      "invalid_client",
      700211,
      "No matching federated identity record found for presented assertion issuer 'https://token.actions.githubusercontent.com'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
    );

    const wrongSubject = await mintForEntra({ claims: { sub: "repo:acme/app:pull_request" } });
    expectEntraError(
      await postForm(token, entraParams(wrongSubject)),
      401,
      "invalid_client",
      700213,
      "No matching federated identity record found for presented assertion subject 'repo:acme/app:pull_request'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
    );

    const wrongCase = await mintForEntra({ claims: { sub: "repo:Acme/app:ref:refs/heads/main" } });
    expectEntraError(
      await postForm(token, entraParams(wrongCase)),
      401,
      "invalid_client",
      7002138,
      "No matching federated identity record found for presented assertion subject 'repo:Acme/app:ref:refs/heads/main'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. See documentation at: https://learn.microsoft.com/entra/workload-id/workload-identity-federation. See breaking change notification and remediation at: https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes#august-2024.",
    );

    const wrongAudience = await ci.mint({ aud: "https://github.com/acme" });
    expectEntraError(
      await postForm(token, entraParams(wrongAudience)),
      401,
      "invalid_client",
      700212,
      "No matching federated identity record found for presented assertion audience 'https://github.com/acme'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
    );
  });

  it("verifies the assertion's signature and validity window against the issuer's keys", async () => {
    const token = entra.tokenEndpoint(TENANT);
    expectEntraError(
      await postForm(token, entraParams(await mintForEntra({ untrusted: true }))),
      401,
      "invalid_client",
      700027,
      "Client assertion failed signature validation.",
    );

    const strangers = await stranger.mint({ aud: AZURE_AD_TOKEN_EXCHANGE });
    expectEntraError(
      await postForm(token, entraParams(strangers)),
      401,
      "invalid_client",
      7000272,
      `The certificate with identifier ${stranger.kid} used to sign the federated credential could not be found in the metadata of identity provider ${stranger.issuer}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
    );
    const unreachable = await mintForEntra({ claims: { iss: "http://127.0.0.1:1" } });
    expectEntraError(
      await postForm(token, entraParams(unreachable)),
      401,
      "invalid_client",
      7000272,
      `The certificate with identifier ${ci.kid} used to sign the federated credential could not be found in the metadata of identity provider http://127.0.0.1:1.…`,
    );

    const nowSeconds = Math.floor(Date.now() / 1000);
    const expired = await mintForEntra({ iat: nowSeconds - 3600, exp: nowSeconds - 600 });
    const answer = await postForm(token, entraParams(expired));
    expectEntraError(answer, 401, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: …");
    expect(answer.body["error_description"]).toContain(
      `, assertion valid from ${dotnetTime((nowSeconds - 3600) * 1000)}, expiry time of assertion ${dotnetTime((nowSeconds - 600) * 1000)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
    );
    const early = await mintForEntra({ iat: nowSeconds + 600, exp: nowSeconds + 900 });
    expectEntraError(
      await postForm(token, entraParams(early)),
      401,
      "invalid_client",
      700024,
      "Client assertion is not within its valid time range.…",
    );
  });

  it("echoes client-request-id as correlation_id and can answer the older AADSTS70021 form with \\r\\n lines", async () => {
    const wrongSubject = await mintForEntra({ claims: { sub: "repo:acme/app:pull_request" } });
    const echoed = await postForm(entra.tokenEndpoint(TENANT), entraParams(wrongSubject), {
      "client-request-id": "c0ffee00-0000-4000-8000-000000000001",
    });
    expect(echoed.body["correlation_id"]).toBe("c0ffee00-0000-4000-8000-000000000001");
    expect(entra.requests.at(-1)).toMatchObject({
      clientRequestId: "c0ffee00-0000-4000-8000-000000000001",
      status: 401,
      errorCodes: [700213],
    });

    const legacy = await postForm(legacyEntra.tokenEndpoint(TENANT), entraParams(wrongSubject));
    expectEntraError(
      legacy,
      401,
      "invalid_client",
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${ci.issuer}'. Assertion Subject: 'repo:acme/app:pull_request'. Assertion Audience: '${AZURE_AD_TOKEN_EXCHANGE}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation`,
      "\r\n",
    );
  });
});

/** The request google-auth-library sends for an OIDC provider (stscredentials.ts), in its order. */
function stsParams(
  provider: WorkloadIdentityProvider,
  subjectToken: string,
  overrides: Record<string, string | undefined> = {},
): Record<string, string> {
  const params: Record<string, string | undefined> = {
    grant_type: STS_GRANT_TYPE,
    audience: sts.audienceOf(provider),
    scope: CLOUD_PLATFORM_SCOPE,
    requested_token_type: STS_TOKEN_TYPE_ACCESS_TOKEN,
    subject_token: subjectToken,
    subject_token_type: STS_TOKEN_TYPE_JWT,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
}

function mintForGoogle(opts: MintOptions = {}): Promise<string> {
  return ci.mint({ aud: sts.defaultTokenAudience(github), ...opts });
}

function expectStsError(answer: Answer, error: string, description: string | RegExp): void {
  expect(answer.status).toBe(400);
  expect(Object.keys(answer.body).sort()).toEqual(["error", "error_description"]);
  expect(answer.body["error"]).toBe(error);
  if (typeof description === "string") expect(answer.body["error_description"]).toBe(description);
  else expect(answer.body["error_description"]).toMatch(description);
}

async function federatedToken(scope = CLOUD_PLATFORM_SCOPE): Promise<string> {
  const answer = await postForm(sts.tokenEndpoint, stsParams(github, await mintForGoogle(), { scope }));
  expect(answer.status).toBe(200);
  return String(answer.body["access_token"]);
}

describe("fake Google STS", () => {
  it("exchanges a CI token sent exactly as Google documents, form or JSON, and records the parameter set", async () => {
    const params = stsParams(github, await mintForGoogle());
    const answer = await postForm(sts.tokenEndpoint, params);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      access_token: expect.stringMatching(/^ya29\.d\./),
      issued_token_type: STS_TOKEN_TYPE_ACCESS_TOKEN,
      token_type: "Bearer",
      expires_in: expect.any(Number),
    });
    expect(answer.body["expires_in"]).toBeGreaterThan(200);
    expect(answer.body["expires_in"]).toBeLessThanOrEqual(300);
    expect(sts.requests.at(-1)).toMatchObject({
      status: 200,
      params,
      paramNames: ["grant_type", "audience", "scope", "requested_token_type", "subject_token", "subject_token_type"],
    });
    expect(sts.requests.at(-1)?.authorization).toBeUndefined();
    const issued = sts.federatedTokens.get(String(answer.body["access_token"]));
    expect(issued).toMatchObject({
      principal: sts.principalOf(github, SUBJECT),
      attributes: { "google.subject": SUBJECT, "attribute.repository": "acme/app" },
      scopes: [CLOUD_PLATFORM_SCOPE],
    });
    expect(await sts.isValidAccessToken(String(answer.body["access_token"]))).toBe(true);

    const viaJson = await postJson(sts.tokenEndpoint, {
      grantType: STS_GRANT_TYPE,
      audience: sts.audienceOf(github),
      scope: CLOUD_PLATFORM_SCOPE,
      requestedTokenType: STS_TOKEN_TYPE_ACCESS_TOKEN,
      subjectToken: await ci.mint({ aud: sts.audienceOf(github) }),
      subjectTokenType: STS_TOKEN_TYPE_JWT,
    });
    expect(viaJson.status).toBe(200);
  });

  it("accepts only the provider's allowed audiences: the resource name by default, the configured list otherwise", async () => {
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, await ci.mint())),
      "invalid_grant",
      "The audience in ID Token [https://github.com/acme] does not match the expected audience.",
    );
    expect((await postForm(sts.tokenEndpoint, stsParams(explicitAud, await ci.mint()))).status).toBe(200);
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(explicitAud, await ci.mint({ aud: sts.defaultTokenAudience(explicitAud) }))),
      "invalid_grant",
      `The audience in ID Token [${sts.defaultTokenAudience(explicitAud)}] does not match the expected audience.`,
    );
  });

  it("refuses anything Google does not document for this exchange", async () => {
    const subject = await mintForGoogle();
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { client_id: "opencode-ci" })),
      "invalid_request",
      /^Unsupported parameter "client_id"\./,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { assertion: subject })),
      "invalid_request",
      /^Unsupported parameter "assertion"\./,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject), { authorization: "Bearer x" }),
      "invalid_request",
      /Authorization header/,
    );
    const repeated = `${new URLSearchParams(stsParams(github, subject)).toString()}&scope=openid`;
    const twice = await send(sts.tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: repeated,
    });
    expectStsError(twice, "invalid_request", 'Parameter "scope" is included more than once.');
    expect(sts.requests.at(-1)?.paramNames).toEqual([...Object.keys(stsParams(github, subject)), "scope"]);
    expect(
      (await postForm(sts.tokenEndpoint, stsParams(github, subject, { options: JSON.stringify({ userProject: "acme-prod" }) }))).status,
    ).toBe(200);
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { options: '{"lifetime":3600}' })),
      "invalid_request",
      /^Invalid value for "options"/,
    );
  });

  it("answers audience, provider and token-type mistakes with Google's errors", async () => {
    const subject = await mintForGoogle();
    const pool = `//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ci-pool`;
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { audience: pool })),
      "invalid_request",
      'Invalid value for "audience". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.',
    );
    const missing =
      'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.';
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { audience: `${pool}/providers/nope` })),
      "invalid_target",
      missing,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { audience: `${pool}/providers/disabled` })),
      "invalid_target",
      missing,
    );
    expectStsError(
      await postForm(
        sts.tokenEndpoint,
        stsParams(github, subject, { audience: sts.audienceOf(github).replace("123456789012", "acme-prod") }),
      ),
      "invalid_target",
      missing,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { grant_type: "client_credentials" })),
      "unsupported_grant_type",
      /grant_type/,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { requested_token_type: undefined })),
      "invalid_request",
      /requested_token_type/,
    );
    expectStsError(
      await postForm(sts.tokenEndpoint, stsParams(github, subject, { subject_token_type: STS_TOKEN_TYPE_ACCESS_TOKEN })),
      "invalid_request",
      /subject_token_type/,
    );
    expectStsError(await postForm(sts.tokenEndpoint, stsParams(github, subject, { scope: undefined })), "invalid_request", /scope/);
  });

  it("checks the subject token's issuer, signature, age and the attribute condition", async () => {
    const post = async (token: string, provider = github) => postForm(sts.tokenEndpoint, stsParams(provider, token));
    expectStsError(
      await post(await mintForGoogle({ claims: { iss: "https://token.actions.githubusercontent.com" } })),
      "invalid_grant",
      "The issuer in ID Token https://token.actions.githubusercontent.com does not match the expected one in config",
    );
    expectStsError(await post(await mintForGoogle({ untrusted: true })), "invalid_grant", "Unable to verify the ID Token signature.");
    expectStsError(
      await post(await stranger.mint({ aud: sts.defaultTokenAudience(strangerProvider) }), strangerProvider),
      "invalid_grant",
      "Error connecting to the given credential's issuer.",
    );
    const nowSeconds = Math.floor(Date.now() / 1000);
    expectStsError(
      await post(await mintForGoogle({ iat: nowSeconds - 900, exp: nowSeconds - 600 })),
      "invalid_grant",
      `ID Token issued at ${nowSeconds - 900} is stale to sign-in.`,
    );
    expectStsError(
      await post(await mintForGoogle({ claims: { repository_owner: "evil" } })),
      "unauthorized_client",
      "The given credential is rejected by the attribute condition.",
    );
    expect(sts.requests.at(-1)).toMatchObject({ status: 400, error: "unauthorized_client" });
  });
});

function generate(
  email: string,
  bearer: string | undefined,
  body: unknown = { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "600s" },
): Promise<Answer> {
  return postJson(iam.generateAccessTokenUrl(email), body, bearer ? { authorization: `Bearer ${bearer}` } : {});
}

function expectGoogleError(answer: Answer, code: number, status: string, message: string, reason?: string): void {
  expect(answer.status).toBe(code);
  expect(Object.keys(answer.body)).toEqual(["error"]);
  const error = answer.body["error"] as Json;
  expect(error["code"]).toBe(code);
  expect(error["status"]).toBe(status);
  expect(error["message"]).toBe(message);
  if (reason) expect((error["details"] as Json[])[0]).toMatchObject({ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason });
}

describe("fake IAM Credentials generateAccessToken", () => {
  it("mints a service account token for a bound principal set and records the request", async () => {
    const bearer = await federatedToken();
    const before = Date.now();
    const answer = await generate(SA, bearer);
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body).sort()).toEqual(["accessToken", "expireTime"]);
    expect(answer.body["accessToken"]).toMatch(/^ya29\.c\./);
    expect(answer.body["expireTime"]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const expireMs = Date.parse(String(answer.body["expireTime"]));
    expect(expireMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(expireMs).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(iam.requests.at(-1)).toMatchObject({
      path: `/v1/projects/-/serviceAccounts/${SA}:generateAccessToken`,
      email: SA,
      status: 200,
      body: { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "600s" },
    });
    const token = String(answer.body["accessToken"]);
    expect(await iam.isValidAccessToken(token, SA)).toBe(true);
    expect(await iam.isValidAccessToken(token, SA_BY_SUBJECT)).toBe(false);
    expect(await iam.isValidAccessToken(bearer)).toBe(false);
    expect(iam.issuedTokens.get(token)?.delegator).toBe(sts.principalOf(github, SUBJECT));
  });

  it("accepts a principal:// subject binding and a 12-hour lifetime where the org policy allows it", async () => {
    const answer = await generate(SA_BY_SUBJECT, await federatedToken(), { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "43200s" });
    expect(answer.status).toBe(200);
  });

  it("answers 401 UNAUTHENTICATED for a missing, unknown, revoked or expired federated token", async () => {
    const help =
      "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    expectGoogleError(
      await generate(SA, undefined),
      401,
      "UNAUTHENTICATED",
      `Request is missing required authentication credential. ${help}`,
      "CREDENTIALS_MISSING",
    );
    expectGoogleError(
      await generate(SA, "ya29.d.unknown"),
      401,
      "UNAUTHENTICATED",
      `Request had invalid authentication credentials. ${help}`,
    );
    const revoked = await federatedToken();
    sts.revokeAccessToken(revoked);
    expectGoogleError(await generate(SA, revoked), 401, "UNAUTHENTICATED", `Request had invalid authentication credentials. ${help}`);
    const bearer = await federatedToken();
    offsetMs = 2 * 3600_000;
    try {
      expectGoogleError(
        await generate(SA, bearer),
        401,
        "UNAUTHENTICATED",
        `Request had invalid authentication credentials. ${help}`,
        "ACCESS_TOKEN_EXPIRED",
      );
      expect(await sts.isValidAccessToken(bearer)).toBe(false);
    } finally {
      offsetMs = 0;
    }
  });

  it("answers 403 PERMISSION_DENIED without the impersonation binding or the scope, and 404 for an unknown account", async () => {
    const bearer = await federatedToken();
    const denied = await generate(SA_UNBOUND, bearer);
    expect(denied.body).toEqual({
      error: {
        code: 403,
        message: "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        status: "PERMISSION_DENIED",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason: "IAM_PERMISSION_DENIED",
            domain: "iam.googleapis.com",
            metadata: { permission: "iam.serviceAccounts.getAccessToken" },
          },
        ],
      },
    });
    expect(denied.status).toBe(403);
    expectGoogleError(
      await generate(SA, await federatedToken("https://www.googleapis.com/auth/devstorage.read_only")),
      403,
      "PERMISSION_DENIED",
      "Request had insufficient authentication scopes.",
      "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
    );
    expectGoogleError(
      await generate("ghost@acme-prod.iam.gserviceaccount.com", bearer),
      404,
      "NOT_FOUND",
      "Not found; Gaia id not found for email ghost@acme-prod.iam.gserviceaccount.com",
    );

    const account = iam.serviceAccounts.find((a) => a.email === SA);
    const bindings = account?.workloadIdentityUsers.splice(0) ?? [];
    try {
      expect((await generate(SA, bearer)).status).toBe(403);
    } finally {
      account?.workloadIdentityUsers.push(...bindings);
    }
  });

  it("answers 400 INVALID_ARGUMENT for lifetimes and bodies Google refuses", async () => {
    const bearer = await federatedToken();
    expectGoogleError(
      await generate(SA, bearer, { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "3601s" }),
      400,
      "INVALID_ARGUMENT",
      `Access tokens for service account ${SA} can not have lifetimes of more than 1 hour. Use the Org Policy Constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension to allow up to 12 hours.`,
    );
    expectGoogleError(
      await generate(SA, bearer, { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "0s" }),
      400,
      "INVALID_ARGUMENT",
      "Lifetime of access token must be larger then zero.",
    );
    expect((await generate(SA, bearer, { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "1h" })).status).toBe(400);
    expectGoogleError(
      await generate(SA, bearer, { scope: [CLOUD_PLATFORM_SCOPE], lifetimeSeconds: 600 }),
      400,
      "INVALID_ARGUMENT",
      'Invalid JSON payload received. Unknown name "lifetimeSeconds": Cannot find field.',
    );
    expect((await generate(SA, bearer, { lifetime: "600s" })).status).toBe(400);
    const wrongProject = await postJson(
      iam.generateAccessTokenUrl(SA).replace("/projects/-/", "/projects/acme-prod/"),
      { scope: [CLOUD_PLATFORM_SCOPE] },
      { authorization: `Bearer ${bearer}` },
    );
    expect(wrongProject.status).toBe(400);
  });

  it("feeds a Vertex-like model server that accepts only the final service account tokens", async () => {
    const bearer = await federatedToken();
    const saToken = String((await generate(SA, bearer)).body["accessToken"]);
    const model = await startModelServer({ validateToken: (t) => iam.isValidAccessToken(t, SA) });
    try {
      const auth = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
      const statuses = [
        (await fetch(`${model.baseURL}/models`, auth(saToken))).status,
        (await fetch(`${model.baseURL}/models`, auth(bearer))).status,
      ];
      expect(statuses).toEqual([200, 401]);
    } finally {
      await model.close();
    }
  });
});
