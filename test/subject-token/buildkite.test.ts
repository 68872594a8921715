/**
 * BuildkiteSource against a fake `buildkite-agent` on PATH that prints tokens minted by the fake CI issuer.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { BuildkiteSource } from "../../src/subject-token/buildkite.js";
import { summarizeClaims } from "../../src/subject-token/claims.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { pathWith, writeFakeCli, type FakeCli } from "../support/fake-cli.js";
import { fp, rejectionOf } from "../support/harness.js";

const AUDIENCE = "https://auth.example.com/realms/acme";

let ci: CiIssuer;
let dir: string;
let agent: FakeCli;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "buildkite-"));
  agent = await writeFakeCli(dir, "buildkite-agent");
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function job(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    BUILDKITE: "true",
    BUILDKITE_JOB_ID: "job-uuid-1",
    BUILDKITE_AGENT_ACCESS_TOKEN: "agent-token-secret-0123456789abcdefABCDEF",
    PATH: pathWith(dir),
    ...extra,
  };
}

const context = (env: NodeJS.ProcessEnv, timeoutMs = 5000): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch: () => Promise.reject(new Error("the buildkite source must not make requests")),
  timeoutMs,
});

const buildkiteClaims = {
  organization_slug: "acme",
  pipeline_slug: "app",
  build_branch: "main",
  sub: "organization:acme:pipeline:app:ref:refs/heads/main:commit:abc:step:ai",
};

describe("BuildkiteSource", () => {
  it("runs `buildkite-agent oidc request-token --audience A --lifetime S` and returns its token", async () => {
    const minted = await ci.mint({ aud: AUDIENCE, style: "plain", claims: buildkiteClaims });
    await agent.plan({ tokens: { [AUDIENCE]: minted } });
    const source = new BuildkiteSource(AUDIENCE, 600);
    expect(source.type).toBe("buildkite");
    const token = await source.getSubjectToken(context(job()));
    expect(fp(token)).toBe(fp(minted));
    expect(decodeJwt(token)).toMatchObject({ aud: AUDIENCE, pipeline_slug: "app" });
    const call = (await agent.calls()).at(-1);
    expect(call?.argv).toEqual(["oidc", "request-token", "--audience", AUDIENCE, "--lifetime", "600"]);
    // The agent reads its job from the environment the source passes on.
    expect(call?.env.BUILDKITE_JOB_ID).toBe("job-uuid-1");
  });

  it("passes each optional claim as its own --claim, and the token carries them", async () => {
    const minted = await ci.mint({
      aud: AUDIENCE,
      style: "plain",
      claims: {
        ...buildkiteClaims,
        organization_id: "0190d9c4-0000-4000-8000-000000000001",
        pipeline_id: "0190d9c4-0000-4000-8000-000000000002",
      },
    });
    await agent.plan({ tokens: { [AUDIENCE]: minted } });
    const token = await new BuildkiteSource(AUDIENCE, undefined, ["organization_id", "pipeline_id"]).getSubjectToken(context(job()));
    expect((await agent.calls()).at(-1)?.argv).toEqual([
      "oidc",
      "request-token",
      "--audience",
      AUDIENCE,
      "--claim",
      "organization_id",
      "--claim",
      "pipeline_id",
    ]);
    // Logs and doctor show the immutable ids next to the slugs.
    expect(summarizeClaims(decodeJwt(token))).toMatchObject({
      organization_slug: "acme",
      organization_id: "0190d9c4-0000-4000-8000-000000000001",
      pipeline_id: "0190d9c4-0000-4000-8000-000000000002",
    });
  });

  it("leaves out --audience and --lifetime when they are not configured", async () => {
    await agent.plan({ tokens: { "(default)": await ci.mint({ aud: "https://buildkite.com/acme", style: "plain" }) } });
    await new BuildkiteSource(undefined, undefined).getSubjectToken(context(job()));
    expect((await agent.calls()).at(-1)?.argv).toEqual(["oidc", "request-token"]);
  });

  it("without the job variables, names the missing ones and the container fix", async () => {
    const err = (await rejectionOf(
      new BuildkiteSource(AUDIENCE, undefined).getSubjectToken(context(job({ BUILDKITE_AGENT_ACCESS_TOKEN: undefined }))),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      "buildkite subject token: BUILDKITE_AGENT_ACCESS_TOKEN is not set. The agent sets BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN in every job. In a container step, mount the agent into it (docker plugin: `mount-buildkite-agent: true`), which also passes these variables.",
    );
    const outside = (await rejectionOf(new BuildkiteSource(AUDIENCE, undefined).getSubjectToken(context({})))) as CiAuthError;
    expect(outside.reason).toMatch(
      /^buildkite subject token: BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN are not set \(this does not look like a Buildkite job: BUILDKITE is not set\)\./,
    );
  });

  it("without buildkite-agent on PATH, says how to mount it", async () => {
    const err = (await rejectionOf(
      new BuildkiteSource(AUDIENCE, undefined).getSubjectToken(context(job({ PATH: "/nonexistent" }))),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toMatch(/^buildkite subject token: buildkite-agent is not on PATH\. .*`mount-buildkite-agent: true`/);
  });

  it("an agent API failure is transient and quoted; a refusal is not transient", async () => {
    await agent.plan({
      stderr: "fatal: failed to request OIDC token: POST https://agent.buildkite.com/v3/jobs/x/oidc/tokens: 502 Bad Gateway",
      exitCode: 1,
    });
    const failing = (await rejectionOf(new BuildkiteSource(AUDIENCE, undefined).getSubjectToken(context(job())))) as CiAuthError;
    expect(failing).toBeInstanceOf(SubjectTokenRequestError);
    expect(failing.transient).toBe(true);
    expect(failing.reason).toMatch(
      /^buildkite subject token: `buildkite-agent oidc request-token` exited with code 1: fatal: failed to request OIDC token: .*502 Bad Gateway\.$/,
    );

    await agent.plan({ stderr: "fatal: failed to request OIDC token: 403 Forbidden: lifetime exceeds the maximum", exitCode: 1 });
    const refused = (await rejectionOf(new BuildkiteSource(AUDIENCE, 999_999).getSubjectToken(context(job())))) as CiAuthError;
    expect(refused.transient).toBe(false);
  });

  it("a hung agent is stopped at the source's timeoutSeconds, as a transient failure", async () => {
    await agent.plan({ tokens: { "*": "x" }, sleepMs: 60_000 });
    // The context's limit (oauth2.timeoutSeconds) is not the one that applies.
    const err = (await rejectionOf(
      new BuildkiteSource(AUDIENCE, undefined, [], 0.4).getSubjectToken(context(job(), 60_000)),
    )) as CiAuthError;
    expect(err.reason).toBe("buildkite subject token: `buildkite-agent oidc request-token` did not finish within 0.4s and was stopped.");
    expect(err.transient).toBe(true);
  });

  it("oauth2.timeoutSeconds does not cut off an agent that is still retrying: the source's own limit applies", async () => {
    const minted = await ci.mint({ aud: AUDIENCE, style: "plain", claims: buildkiteClaims });
    // An agent that answers after about a second, as after a retry; the context allows only 0.3 s.
    await agent.plan({ tokens: { [AUDIENCE]: minted }, sleepMs: 1000 });
    const token = await new BuildkiteSource(AUDIENCE, undefined).getSubjectToken(context(job(), 300));
    expect(fp(token)).toBe(fp(minted));
  });

  it("cacheIdentity: the job and a fingerprint of its agent token, never the token itself", async () => {
    const source = new BuildkiteSource(AUDIENCE, undefined);
    const identity = await source.cacheIdentity(context(job()));
    expect(identity).toBeDefined();
    expect(identity).toContain("job-uuid-1");
    expect(identity).not.toContain("agent-token-secret");
    expect(await source.cacheIdentity(context(job({ BUILDKITE_JOB_ID: "job-uuid-2" })))).not.toBe(identity);
    expect(await new BuildkiteSource(AUDIENCE, 600).cacheIdentity(context(job()))).not.toBe(identity);
    // Requested claims change the token: another identity, whatever their order.
    const withClaims = await new BuildkiteSource(AUDIENCE, undefined, ["organization_id", "pipeline_id"]).cacheIdentity(context(job()));
    expect(withClaims).not.toBe(identity);
    expect(await new BuildkiteSource(AUDIENCE, undefined, ["pipeline_id", "organization_id"]).cacheIdentity(context(job()))).toBe(
      withClaims,
    );
    expect(await source.cacheIdentity(context({}))).toBeUndefined();
  });
});
