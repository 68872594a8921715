/** BitbucketSource: BITBUCKET_STEP_OIDC_TOKEN (one audience or several), and the `oidc` fix when it is missing. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SubjectTokenInvalidError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { BitbucketSource } from "../../src/subject-token/bitbucket.js";
import { checkSubjectToken } from "../../src/subject-token/claims.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { fp, rejectionOf } from "../support/harness.js";

let ci: CiIssuer;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  token = await ci.mint({
    aud: "ari:cloud:bitbucket::workspace/ws-uuid",
    style: "plain",
    claims: { repositoryUuid: "{repo-uuid}", branchName: "main" },
  });
});

afterAll(async () => {
  await ci?.close();
});

const step = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  CI: "true",
  BITBUCKET_BUILD_NUMBER: "42",
  BITBUCKET_REPO_UUID: "{repo-uuid}",
  BITBUCKET_STEP_UUID: "{step-uuid}",
  BITBUCKET_STEP_OIDC_TOKEN: token,
  ...extra,
});
const context = (env: NodeJS.ProcessEnv): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch: () => Promise.reject(new Error("no requests")),
  timeoutMs: 10_000,
});

describe("BitbucketSource", () => {
  it("reads BITBUCKET_STEP_OIDC_TOKEN", async () => {
    const source = new BitbucketSource(undefined);
    expect(source.type).toBe("bitbucket");
    expect(fp(await source.getSubjectToken(context(step())))).toBe(fp(`${token}`));
    expect(fp(await source.getSubjectToken(context(step({ BITBUCKET_STEP_OIDC_TOKEN: ` ${token}\n` }))))).toBe(fp(token));
  });

  it("without it, asks for `oidc: true` on the step", async () => {
    const err = (await rejectionOf(
      new BitbucketSource(undefined).getSubjectToken(context(step({ BITBUCKET_STEP_OIDC_TOKEN: undefined }))),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      "bitbucket subject token: BITBUCKET_STEP_OIDC_TOKEN is not set. Enable OIDC on the step that runs opencode in bitbucket-pipelines.yml: `oidc: true`, or `oidc: { audiences: [<your IdP's audience>] }` to choose the token's audience.",
    );
    const outside = (await rejectionOf(new BitbucketSource(undefined).getSubjectToken(context({})))) as CiAuthError;
    expect(outside.reason).toContain("(this does not look like a Bitbucket Pipelines step: BITBUCKET_BUILD_NUMBER is not set)");
  });

  it("a step with `oidc: audiences:` gets a token with those audiences, as an array: any of them passes the local check", async () => {
    const IDP = "https://auth.example.com/realms/acme";
    const multi = await ci.mint({ aud: [IDP, "https://other.example"], style: "plain", claims: { repositoryUuid: "{repo-uuid}" } });
    const env = step({ BITBUCKET_STEP_OIDC_TOKEN: multi });
    const source = new BitbucketSource(IDP);
    const got = await source.getSubjectToken(context(env));
    expect(checkSubjectToken(got, { source: "bitbucket", providerId: "miaou", expectedAudience: IDP }).claims.aud).toEqual([
      IDP,
      "https://other.example",
    ]);
    expect(() => checkSubjectToken(got, { source: "bitbucket", providerId: "miaou", expectedAudience: "https://third.example" })).toThrow(
      SubjectTokenInvalidError,
    );
  });

  it("cacheIdentity: the repository, the step and a fingerprint of the token", async () => {
    const identity = await new BitbucketSource(undefined).cacheIdentity(context(step()));
    expect(identity).toContain("{step-uuid}");
    expect(identity).not.toContain(token);
    expect(await new BitbucketSource(undefined).cacheIdentity(context(step({ BITBUCKET_STEP_UUID: "{other}" })))).not.toBe(identity);
    expect(await new BitbucketSource(undefined).cacheIdentity(context(step({ BITBUCKET_STEP_OIDC_TOKEN: undefined })))).toBeUndefined();
  });
});
