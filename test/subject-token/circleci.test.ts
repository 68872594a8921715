/**
 * CircleCiSource: the job's CIRCLE_OIDC_TOKEN_V2, or a fake `circleci` CLI on PATH for a custom audience.
 * Tokens come from the fake CI issuer and are compared through fingerprints only.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { CircleCiSource } from "../../src/subject-token/circleci.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { pathWith, writeFakeCli, type FakeCli } from "../support/fake-cli.js";
import { fp, rejectionOf } from "../support/harness.js";

const AUDIENCE = "https://auth.example.com/realms/acme";
const ORG = "7b5c9e2a-0000-4000-8000-000000000001";

let ci: CiIssuer;
let dir: string;
let cli: FakeCli;
let v2: string;
let v1: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "circleci-"));
  cli = await writeFakeCli(dir, "circleci");
  v2 = await ci.mint({ aud: ORG, style: "plain", claims: { "oidc.circleci.com/project-id": "p-1" } });
  v1 = await ci.mint({ aud: ORG, style: "plain" });
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function job(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    CIRCLECI: "true",
    CIRCLE_WORKFLOW_JOB_ID: "job-uuid-1",
    CIRCLE_OIDC_TOKEN_V2: v2,
    CIRCLE_OIDC_TOKEN: v1,
    PATH: pathWith(dir),
    ...extra,
  };
}

const context = (env: NodeJS.ProcessEnv): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch: () => Promise.reject(new Error("the circleci source must not make requests")),
  timeoutMs: 5000,
});

describe("CircleCiSource without an audience: the token in the environment", () => {
  it("reads CIRCLE_OIDC_TOKEN_V2, and falls back to CIRCLE_OIDC_TOKEN", async () => {
    const source = new CircleCiSource(undefined);
    expect(source.type).toBe("circleci");
    expect(source.expectedAudience).toBeUndefined();
    expect(fp(await source.getSubjectToken(context(job())))).toBe(fp(v2));
    expect(fp(await source.getSubjectToken(context(job({ CIRCLE_OIDC_TOKEN_V2: undefined }))))).toBe(fp(v1));
    expect(await cli.calls()).toEqual([]);
  });

  it("without a token, says where CircleCI gives one, and the fork setting; no context is needed", async () => {
    const err = (await rejectionOf(
      new CircleCiSource(undefined).getSubjectToken(context(job({ CIRCLE_OIDC_TOKEN_V2: undefined, CIRCLE_OIDC_TOKEN: "" }))),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      'circleci subject token: CIRCLE_OIDC_TOKEN_V2 is not set. CircleCI sets it in every job of a project on CircleCI cloud or server 4.4+ (not in an air-gapped installation); if it is missing, check that the job runs there. Jobs of pull requests from forks get none unless the project enables "Pass secrets to builds from forked pull requests" (docs/troubleshooting.md).',
    );
    expect(err.reason).not.toMatch(/context/);
    expect(err.reason).toContain("Pass secrets to builds from forked pull requests");
  });

  it("outside CircleCI, says so", async () => {
    const err = (await rejectionOf(new CircleCiSource(undefined).getSubjectToken(context({})))) as CiAuthError;
    expect(err.reason).toMatch(
      /^circleci subject token: CIRCLE_OIDC_TOKEN_V2 is not set \(this does not look like a CircleCI job: CIRCLECI is not set\)\./,
    );
  });
});

describe("CircleCiSource with an audience: `circleci run oidc get`", () => {
  it("asks the CLI for a token with that aud, without a shell, and returns what it prints", async () => {
    const minted = await ci.mint({ aud: AUDIENCE, style: "plain" });
    await cli.plan({ tokens: { [AUDIENCE]: minted } });
    const token = await new CircleCiSource(AUDIENCE).getSubjectToken(context(job()));
    expect(fp(token)).toBe(fp(minted));
    expect(decodeJwt(token).aud).toBe(AUDIENCE);
    expect((await cli.calls()).at(-1)?.argv).toEqual(["run", "oidc", "get", "--claims", JSON.stringify({ aud: AUDIENCE })]);
  });

  it("encodes an audience with quotes and backslashes as JSON", async () => {
    const odd = 'api://x"y\\z';
    await cli.plan({ tokens: { [odd]: await ci.mint({ aud: odd }) } });
    await new CircleCiSource(odd).getSubjectToken(context(job()));
    const argv = (await cli.calls()).at(-1)?.argv ?? [];
    expect(JSON.parse(argv[4] ?? "")).toEqual({ aud: odd });
  });

  it("without the CLI, says how to get it or how to do without", async () => {
    const err = (await rejectionOf(new CircleCiSource(AUDIENCE).getSubjectToken(context(job({ PATH: "/nonexistent" }))))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      "circleci subject token: the circleci command is not on PATH. CircleCI provides it inside jobs to mint tokens with a custom audience (not in a container you start yourself); or remove subjectTokenSource.audience to use CIRCLE_OIDC_TOKEN_V2, whose aud is the organization id.",
    );
  });

  it("a failing CLI in a job without OIDC tokens also gets the explanation", async () => {
    await cli.plan({ stderr: "Error: failed to get OIDC token: unauthorized", exitCode: 1 });
    const err = (await rejectionOf(
      new CircleCiSource(AUDIENCE).getSubjectToken(context(job({ CIRCLE_OIDC_TOKEN_V2: undefined, CIRCLE_OIDC_TOKEN: undefined }))),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.reason).toMatch(
      /^circleci subject token: `circleci run oidc get` exited with code 1: Error: failed to get OIDC token: unauthorized\. CIRCLE_OIDC_TOKEN_V2 is not set either: CircleCI sets it in every job of a project on CircleCI cloud or server 4\.4\+/,
    );
    expect(err.transient).toBe(false);
  });
});

describe("CircleCiSource.cacheIdentity", () => {
  it("is the job id and parallel index, and differs by audience, job and node", async () => {
    const ctx = (env: NodeJS.ProcessEnv) => context(job(env));
    const base = await new CircleCiSource(undefined).cacheIdentity(ctx({}));
    expect(base).toBe(JSON.stringify(["circleci", "(organization id)", "job-uuid-1", "0"]));
    expect(await new CircleCiSource(AUDIENCE).cacheIdentity(ctx({}))).not.toBe(base);
    expect(await new CircleCiSource(undefined).cacheIdentity(ctx({ CIRCLE_WORKFLOW_JOB_ID: "job-uuid-2" }))).not.toBe(base);
    expect(await new CircleCiSource(undefined).cacheIdentity(ctx({ CIRCLE_NODE_INDEX: "1" }))).not.toBe(base);
    expect(await new CircleCiSource(undefined).cacheIdentity(context({}))).toBeUndefined();
  });
});
