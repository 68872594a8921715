/**
 * AzurePipelinesSource against a scripted OIDC endpoint on loopback, standing in for SYSTEM_OIDCREQUESTURI.
 * The access token is compared through fingerprints only.
 */
import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { AzurePipelinesSource } from "../../src/subject-token/azure-pipelines.js";
import { summarizeClaims } from "../../src/subject-token/claims.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { fp, rejectionOf } from "../support/harness.js";
import { startTokenEndpoint, type TokenEndpoint } from "../support/token-endpoint.js";

const CONNECTION = "3f2a1b4c-0000-4000-8000-00000000abcd";
const ACCESS_TOKEN = "azure-job-access-token-0123456789ABCDEFabcdef";
const AZURE_AUD = "api://AzureADTokenExchange";
const PATH = "/acme/_apis/distributedtask/hubs/build/plans/plan-1/jobs/job-1/oidctoken";

const ORG_ID = "6a2b0c1d-0000-4000-8000-0000000000aa";
const TENANT_ID = "72f988bf-0000-4000-8000-0000000000bb";

let ci: CiIssuer;
let endpoint: TokenEndpoint;
/** A service connection's token, from the Microsoft Entra issuer (newer service connections). */
let token: string;
/** The pipeline's own token, with the claims seen in real ones (sigstore/fulcio#1803). */
let pipelineToken: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  endpoint = await startTokenEndpoint();
  const b64 = (uuid: string) => Buffer.from(uuid.replaceAll("-", ""), "hex").toString("base64url");
  token = await ci.mint({
    aud: AZURE_AUD,
    style: "plain",
    claims: {
      iss: `https://login.microsoftonline.com/${TENANT_ID}/v2.0`,
      sub: `/eid1/c/pub/t/${b64(TENANT_ID)}/a/${b64(CONNECTION)}/sc/${ORG_ID}/${CONNECTION}`,
    },
  });
  pipelineToken = await ci.mint({
    aud: AZURE_AUD,
    style: "plain",
    expiresIn: 600,
    claims: {
      iss: `https://vstoken.dev.azure.com/${ORG_ID}`,
      sub: "p://acme/app/app-ci",
      org_id: ORG_ID,
      prj_id: "0d5c9a7e-0000-4000-8000-0000000000cc",
      def_id: "42",
      rpo_id: "1e8f3b2a-0000-4000-8000-0000000000dd",
      rpo_uri: "https://dev.azure.com/acme/app/_git/app",
      rpo_ref: "refs/heads/main",
      rpo_ver: "0123456789abcdef0123456789abcdef01234567",
      run_id: "1234",
    },
  });
});

afterAll(async () => {
  await endpoint?.close();
  await ci?.close();
});

/** Like Azure DevOps: a service connection's token when the query names one, the pipeline's own token otherwise. */
beforeEach(() => {
  endpoint.answer((req) => ({
    status: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ oidcToken: req.query.serviceConnectionId === undefined ? pipelineToken : token }),
  }));
});

function job(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { TF_BUILD: "True", SYSTEM_OIDCREQUESTURI: `${endpoint.origin}${PATH}`, SYSTEM_ACCESSTOKEN: ACCESS_TOKEN, ...extra };
}

const context = (env: NodeJS.ProcessEnv, timeoutMs = 5000): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch: globalThis.fetch,
  timeoutMs,
});
const source = () => new AzurePipelinesSource(CONNECTION, AZURE_AUD);
const pipelineSource = () => new AzurePipelinesSource(undefined, AZURE_AUD);

function expectNoSecrets(err: Error): void {
  const text = `${err.message}\n${err.stack ?? ""}`;
  expect(text.includes(ACCESS_TOKEN), "message contains SYSTEM_ACCESSTOKEN").toBe(false);
  expect(text.includes(token), "message contains the OIDC token").toBe(false);
  expect(text.includes(pipelineToken), "message contains the pipeline token").toBe(false);
}

describe("AzurePipelinesSource", () => {
  it("POSTs to SYSTEM_OIDCREQUESTURI with api-version 7.1, the service connection and the job access token", async () => {
    const before = endpoint.requests.length;
    expect(fp(await source().getSubjectToken(context(job())))).toBe(fp(token));
    expect(endpoint.requests.length).toBe(before + 1);
    const req = endpoint.requests.at(-1);
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe(PATH);
    expect(req?.query).toEqual({ "api-version": "7.1", serviceConnectionId: CONNECTION });
    expect(fp(req?.headers.authorization)).toBe(fp(`Bearer ${ACCESS_TOKEN}`));
    expect(req?.headers["x-tfs-fedauthredirect"]).toBe("Suppress");
  });

  it("adds its parameters to a query the URI already has", async () => {
    await source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: `${endpoint.origin}${PATH}?audit=1&api-version=6.0` })));
    expect(endpoint.requests.at(-1)?.query).toEqual({ audit: "1", "api-version": "7.1", serviceConnectionId: CONNECTION });
  });

  it("without serviceConnectionId, asks for the pipeline's own token: no serviceConnectionId in the query", async () => {
    const got = await pipelineSource().getSubjectToken(context(job()));
    expect(fp(got)).toBe(fp(pipelineToken));
    const req = endpoint.requests.at(-1);
    expect(req?.method).toBe("POST");
    expect(req?.query).toEqual({ "api-version": "7.1" });
    expect(fp(req?.headers.authorization)).toBe(fp(`Bearer ${ACCESS_TOKEN}`));
    await pipelineSource().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: `${endpoint.origin}${PATH}?audit=1` })));
    expect(endpoint.requests.at(-1)?.query).toEqual({ audit: "1", "api-version": "7.1" });
  });

  it("without SYSTEM_ACCESSTOKEN, says how to map it", async () => {
    const err = (await rejectionOf(source().getSubjectToken(context(job({ SYSTEM_ACCESSTOKEN: undefined }))))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      "azure_pipelines subject token: SYSTEM_ACCESSTOKEN is not set. Azure Pipelines does not put the job access token in the environment by default: map it in the step that runs opencode, `env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }`.",
    );
  });

  it("without SYSTEM_OIDCREQUESTURI, tells an old agent from another platform", async () => {
    const onAzure = (await rejectionOf(source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: undefined }))))) as CiAuthError;
    expect(onAzure.reason).toMatch(
      /^azure_pipelines subject token: SYSTEM_OIDCREQUESTURI is not set: this agent does not offer OIDC tokens/,
    );
    const elsewhere = (await rejectionOf(source().getSubjectToken(context({})))) as CiAuthError;
    expect(elsewhere.reason).toBe(
      "azure_pipelines subject token: SYSTEM_OIDCREQUESTURI is not set: this does not look like an Azure Pipelines job (TF_BUILD is not set).",
    );
  });

  it("refuses a plain-http URI to a non-loopback host, before sending anything", async () => {
    const before = endpoint.requests.length;
    const err = (await rejectionOf(
      source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: "http://dev.azure.example/x" }))),
    )) as CiAuthError;
    expect(err.reason).toMatch(/^azure_pipelines subject token: SYSTEM_OIDCREQUESTURI: http:\/\/dev\.azure\.example is not https/);
    expect(endpoint.requests.length).toBe(before);
  });

  it("a 401 says to map the current access token; a 404 points at serviceConnectionId; neither is transient", async () => {
    endpoint.answer(() => ({ status: 401, body: "" }));
    const unauthorized = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(unauthorized).toBeInstanceOf(SubjectTokenRequestError);
    expect(unauthorized.reason).toMatch(/answered HTTP 401\. The job access token was refused: map the current one/);
    expect(unauthorized.transient).toBe(false);

    endpoint.answer(() => ({
      status: 404,
      headers: { "content-type": "application/json" },
      body: '{"message":"Service connection not found"}',
    }));
    const notFound = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(notFound.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} answered HTTP 404: {"message":"Service connection not found"}. Check subjectTokenSource.serviceConnectionId ("${CONNECTION}"): it must be the id of a service connection that uses workload identity federation (Azure Resource Manager, Docker registry, or one an extension created), and this pipeline must be allowed to use it.`,
    );
    expectNoSecrets(notFound);
  });

  it("the pipeline token's claims that an IdP can pin are among those logs and doctor show", () => {
    expect(summarizeClaims(decodeJwt(pipelineToken))).toMatchObject({
      iss: `https://vstoken.dev.azure.com/${ORG_ID}`,
      sub: "p://acme/app/app-ci",
      org_id: ORG_ID,
      prj_id: "0d5c9a7e-0000-4000-8000-0000000000cc",
      def_id: "42",
      rpo_uri: "https://dev.azure.com/acme/app/_git/app",
      rpo_ref: "refs/heads/main",
    });
  });

  it("a 4xx for the pipeline's own token does not talk about a service connection id that was not given", async () => {
    endpoint.answer(() => ({ status: 400, body: "bad request" }));
    const err = (await rejectionOf(pipelineSource().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} answered HTTP 400: bad request. The pipeline's own token was refused: run on Azure DevOps Services with a current agent, or set subjectTokenSource.serviceConnectionId to use a service connection's token.`,
    );
    expect(err.transient).toBe(false);
  });

  it("5xx and 429 are transient, with Retry-After", async () => {
    endpoint.answer(() => ({ status: 503, headers: { "retry-after": "2" }, body: "busy" }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.transient).toBe(true);
    expect(err.retryAfterMs).toBe(2000);
    expect(err.summary).toBe("HTTP 503");
  });

  it("refuses a redirect: the access token only goes to SYSTEM_OIDCREQUESTURI", async () => {
    endpoint.answer(() => ({ status: 302, headers: { location: "https://login.example/" } }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} answered a redirect (HTTP 302), which is not followed: SYSTEM_ACCESSTOKEN is only sent to SYSTEM_OIDCREQUESTURI.`,
    );
    expect(err.transient).toBe(false);
  });

  it("a body that stalls counts against the time limit (transient)", async () => {
    endpoint.answer(() => ({ status: 200, body: '{"oidcToken":"eyJ', stallAfterHeaders: true }));
    const err = (await rejectionOf(source().getSubjectToken(context(job(), 300)))) as CiAuthError;
    expect(err.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} did not answer within 0.3s.`,
    );
    expect(err.transient).toBe(true);
  });

  it("an answer without oidcToken is an error that quotes nothing", async () => {
    endpoint.answer(() => ({ status: 200, body: "<html>sign in</html>" }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.reason).toBe(`azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} did not answer JSON.`);
    endpoint.answer(() => ({ status: 200, body: '{"count":1}' }));
    const missing = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(missing.reason).toBe(
      `azure_pipelines subject token: the field "oidcToken" of the JSON answer from the Azure Pipelines OIDC service (${endpoint.origin}) is missing.`,
    );
  });

  it("cacheIdentity: the connection, the request URI and a fingerprint of the access token", async () => {
    const identity = await source().cacheIdentity(context(job()));
    expect(identity).toContain(CONNECTION);
    expect(identity).not.toContain(ACCESS_TOKEN);
    expect(await source().cacheIdentity(context(job({ SYSTEM_ACCESSTOKEN: "another-job-access-token" })))).not.toBe(identity);
    expect(await new AzurePipelinesSource("other", undefined).cacheIdentity(context(job()))).not.toBe(identity);
    // The pipeline's own token is another identity than any service connection's, in the same job.
    const pipeline = await pipelineSource().cacheIdentity(context(job()));
    expect(pipeline).toBeDefined();
    expect(pipeline).not.toBe(identity);
    expect(pipeline).not.toContain(ACCESS_TOKEN);
    expect(await source().cacheIdentity(context({}))).toBeUndefined();
  });
});
