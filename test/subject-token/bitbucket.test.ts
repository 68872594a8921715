/** BitbucketSource: BITBUCKET_STEP_OIDC_TOKEN, and the `oidc: true` fix when it is missing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SubjectTokenUnavailableError, type CiAuthError } from '../../src/errors.js';
import { BitbucketSource } from '../../src/subject-token/bitbucket.js';
import type { SubjectTokenContext } from '../../src/subject-token/source.js';
import { startCiIssuer, type CiIssuer } from '../support/ci-issuer.js';
import { fp, rejectionOf } from '../support/harness.js';

let ci: CiIssuer;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  token = await ci.mint({ aud: 'ari:cloud:bitbucket::workspace/ws-uuid', style: 'plain', claims: { repositoryUuid: '{repo-uuid}', branchName: 'main' } });
});

afterAll(async () => {
  await ci?.close();
});

const step = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  CI: 'true',
  BITBUCKET_BUILD_NUMBER: '42',
  BITBUCKET_REPO_UUID: '{repo-uuid}',
  BITBUCKET_STEP_UUID: '{step-uuid}',
  BITBUCKET_STEP_OIDC_TOKEN: token,
  ...extra,
});
const context = (env: NodeJS.ProcessEnv): SubjectTokenContext => ({ providerId: 'miaou', env, fetch: () => Promise.reject(new Error('no requests')), timeoutMs: 10_000 });

describe('BitbucketSource', () => {
  it('reads BITBUCKET_STEP_OIDC_TOKEN', async () => {
    const source = new BitbucketSource(undefined);
    expect(source.type).toBe('bitbucket');
    expect(fp(await source.getSubjectToken(context(step())))).toBe(fp(`${token}`));
    expect(fp(await source.getSubjectToken(context(step({ BITBUCKET_STEP_OIDC_TOKEN: ` ${token}\n` }))))).toBe(fp(token));
  });

  it('without it, asks for `oidc: true` on the step', async () => {
    const err = (await rejectionOf(new BitbucketSource(undefined).getSubjectToken(context(step({ BITBUCKET_STEP_OIDC_TOKEN: undefined }))))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe('bitbucket subject token: BITBUCKET_STEP_OIDC_TOKEN is not set. Add `oidc: true` to the step that runs opencode in bitbucket-pipelines.yml.');
    const outside = (await rejectionOf(new BitbucketSource(undefined).getSubjectToken(context({})))) as CiAuthError;
    expect(outside.reason).toContain('(this does not look like a Bitbucket Pipelines step: BITBUCKET_BUILD_NUMBER is not set)');
  });

  it('cacheIdentity: the repository, the step and a fingerprint of the token', async () => {
    const identity = await new BitbucketSource(undefined).cacheIdentity(context(step()));
    expect(identity).toContain('{step-uuid}');
    expect(identity).not.toContain(token);
    expect(await new BitbucketSource(undefined).cacheIdentity(context(step({ BITBUCKET_STEP_UUID: '{other}' })))).not.toBe(identity);
    expect(await new BitbucketSource(undefined).cacheIdentity(context(step({ BITBUCKET_STEP_OIDC_TOKEN: undefined })))).toBeUndefined();
  });
});
