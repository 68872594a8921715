/**
 * AzurePipelinesSource against a scripted OIDC endpoint on loopback, standing in for SYSTEM_OIDCREQUESTURI.
 * The access token is compared through fingerprints only.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from '../../src/errors.js';
import { AzurePipelinesSource } from '../../src/subject-token/azure-pipelines.js';
import type { SubjectTokenContext } from '../../src/subject-token/source.js';
import { startCiIssuer, type CiIssuer } from '../support/ci-issuer.js';
import { fp, rejectionOf } from '../support/harness.js';
import { startTokenEndpoint, type TokenEndpoint } from '../support/token-endpoint.js';

const CONNECTION = '3f2a1b4c-0000-4000-8000-00000000abcd';
const ACCESS_TOKEN = 'azure-job-access-token-0123456789ABCDEFabcdef';
const AZURE_AUD = 'api://AzureADTokenExchange';
const PATH = '/acme/_apis/distributedtask/hubs/build/plans/plan-1/jobs/job-1/oidctoken';

let ci: CiIssuer;
let endpoint: TokenEndpoint;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  endpoint = await startTokenEndpoint();
  token = await ci.mint({ aud: AZURE_AUD, style: 'plain', claims: { sub: `sc://acme/app/${CONNECTION}` } });
});

afterAll(async () => {
  await endpoint?.close();
  await ci?.close();
});

beforeEach(() => {
  endpoint.answer(() => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ oidcToken: token }) }));
});

function job(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { TF_BUILD: 'True', SYSTEM_OIDCREQUESTURI: `${endpoint.origin}${PATH}`, SYSTEM_ACCESSTOKEN: ACCESS_TOKEN, ...extra };
}

const context = (env: NodeJS.ProcessEnv, timeoutMs = 5000): SubjectTokenContext => ({ providerId: 'miaou', env, fetch: globalThis.fetch, timeoutMs });
const source = () => new AzurePipelinesSource(CONNECTION, AZURE_AUD);

function expectNoSecrets(err: Error): void {
  const text = `${err.message}\n${err.stack ?? ''}`;
  expect(text.includes(ACCESS_TOKEN), 'message contains SYSTEM_ACCESSTOKEN').toBe(false);
  expect(text.includes(token), 'message contains the OIDC token').toBe(false);
}

describe('AzurePipelinesSource', () => {
  it('POSTs to SYSTEM_OIDCREQUESTURI with api-version 7.1, the service connection and the job access token', async () => {
    const before = endpoint.requests.length;
    expect(fp(await source().getSubjectToken(context(job())))).toBe(fp(token));
    expect(endpoint.requests.length).toBe(before + 1);
    const req = endpoint.requests.at(-1);
    expect(req?.method).toBe('POST');
    expect(req?.path).toBe(PATH);
    expect(req?.query).toEqual({ 'api-version': '7.1', serviceConnectionId: CONNECTION });
    expect(fp(req?.headers.authorization)).toBe(fp(`Bearer ${ACCESS_TOKEN}`));
    expect(req?.headers['x-tfs-fedauthredirect']).toBe('Suppress');
  });

  it('adds its parameters to a query the URI already has', async () => {
    await source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: `${endpoint.origin}${PATH}?audit=1&api-version=6.0` })));
    expect(endpoint.requests.at(-1)?.query).toEqual({ audit: '1', 'api-version': '7.1', serviceConnectionId: CONNECTION });
  });

  it('without SYSTEM_ACCESSTOKEN, says how to map it', async () => {
    const err = (await rejectionOf(source().getSubjectToken(context(job({ SYSTEM_ACCESSTOKEN: undefined }))))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      'azure_pipelines subject token: SYSTEM_ACCESSTOKEN is not set. Azure Pipelines does not put the job access token in the environment by default: map it in the step that runs opencode, `env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }`.',
    );
  });

  it('without SYSTEM_OIDCREQUESTURI, tells an old agent from another platform', async () => {
    const onAzure = (await rejectionOf(source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: undefined }))))) as CiAuthError;
    expect(onAzure.reason).toMatch(/^azure_pipelines subject token: SYSTEM_OIDCREQUESTURI is not set: this agent does not offer OIDC tokens/);
    const elsewhere = (await rejectionOf(source().getSubjectToken(context({})))) as CiAuthError;
    expect(elsewhere.reason).toBe('azure_pipelines subject token: SYSTEM_OIDCREQUESTURI is not set: this does not look like an Azure Pipelines job (TF_BUILD is not set).');
  });

  it('refuses a plain-http URI to a non-loopback host, before sending anything', async () => {
    const before = endpoint.requests.length;
    const err = (await rejectionOf(source().getSubjectToken(context(job({ SYSTEM_OIDCREQUESTURI: 'http://dev.azure.example/x' }))))) as CiAuthError;
    expect(err.reason).toMatch(/^azure_pipelines subject token: SYSTEM_OIDCREQUESTURI: http:\/\/dev\.azure\.example is not https/);
    expect(endpoint.requests.length).toBe(before);
  });

  it('a 401 says to map the current access token; a 404 points at serviceConnectionId; neither is transient', async () => {
    endpoint.answer(() => ({ status: 401, body: '' }));
    const unauthorized = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(unauthorized).toBeInstanceOf(SubjectTokenRequestError);
    expect(unauthorized.reason).toMatch(/answered HTTP 401\. The job access token was refused: map the current one/);
    expect(unauthorized.transient).toBe(false);

    endpoint.answer(() => ({ status: 404, headers: { 'content-type': 'application/json' }, body: '{"message":"Service connection not found"}' }));
    const notFound = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(notFound.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} answered HTTP 404: {"message":"Service connection not found"}. Check subjectTokenSource.serviceConnectionId ("${CONNECTION}"): it must be the id of an Azure Resource Manager service connection that uses workload identity federation, and this pipeline must be allowed to use it.`,
    );
    expectNoSecrets(notFound);
  });

  it('5xx and 429 are transient, with Retry-After', async () => {
    endpoint.answer(() => ({ status: 503, headers: { 'retry-after': '2' }, body: 'busy' }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.transient).toBe(true);
    expect(err.retryAfterMs).toBe(2000);
    expect(err.summary).toBe('HTTP 503');
  });

  it('refuses a redirect: the access token only goes to SYSTEM_OIDCREQUESTURI', async () => {
    endpoint.answer(() => ({ status: 302, headers: { location: 'https://login.example/' } }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.reason).toBe(
      `azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} answered a redirect (HTTP 302), which is not followed: SYSTEM_ACCESSTOKEN is only sent to SYSTEM_OIDCREQUESTURI.`,
    );
    expect(err.transient).toBe(false);
  });

  it('a body that stalls counts against the time limit (transient)', async () => {
    endpoint.answer(() => ({ status: 200, body: '{"oidcToken":"eyJ', stallAfterHeaders: true }));
    const err = (await rejectionOf(source().getSubjectToken(context(job(), 300)))) as CiAuthError;
    expect(err.reason).toBe(`azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} did not answer within 0.3s.`);
    expect(err.transient).toBe(true);
  });

  it('an answer without oidcToken is an error that quotes nothing', async () => {
    endpoint.answer(() => ({ status: 200, body: '<html>sign in</html>' }));
    const err = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(err.reason).toBe(`azure_pipelines subject token: the Azure Pipelines OIDC service at ${endpoint.origin} did not answer JSON.`);
    endpoint.answer(() => ({ status: 200, body: '{"count":1}' }));
    const missing = (await rejectionOf(source().getSubjectToken(context(job())))) as CiAuthError;
    expect(missing.reason).toBe(`azure_pipelines subject token: the field "oidcToken" of the JSON answer from the Azure Pipelines OIDC service (${endpoint.origin}) is missing.`);
  });

  it('cacheIdentity: the connection, the request URI and a fingerprint of the access token', async () => {
    const identity = await source().cacheIdentity(context(job()));
    expect(identity).toContain(CONNECTION);
    expect(identity).not.toContain(ACCESS_TOKEN);
    expect(await source().cacheIdentity(context(job({ SYSTEM_ACCESSTOKEN: 'another-job-access-token' })))).not.toBe(identity);
    expect(await new AzurePipelinesSource('other', undefined).cacheIdentity(context(job()))).not.toBe(identity);
    expect(await source().cacheIdentity(context({}))).toBeUndefined();
  });
});
