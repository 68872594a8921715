/**
 * `"cache": "file"` wired into the token provider: two providers standing for two `opencode run` processes of one
 * job share one grant; another job, an unidentifiable environment or a rejected token never reuse a file. Runs
 * against src/ and against the packed package (test/support/under-test.ts).
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OAuth2Input } from "../src/lib.js";
import { fp } from "./support/harness.js";
import { UNDER_TEST, captureWith, parseWith } from "./support/under-test.js";
import { startWorld, type World } from "./support/world.js";

let world: World;
/** The cache dir of the package under test now; each has its own, so a file one wrote never answers the other. */
let dir: string;
const dirs: string[] = [];

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** What GitHub gives one job: the token request credentials and the run coordinates. */
function jobEnv(job: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_REPOSITORY_ID: "123",
    GITHUB_RUN_ID: "9001",
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_JOB: "ai",
    ...job,
  };
}

const grantsSince = (n: number) => world.idp.grants.length - n;

describe.each(UNDER_TEST)('"cache": "file" ($name)', ({ name, lib }) => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `file-cache-sharing-${name}-`));
    dirs.push(dir);
  });

  function processFor(env: NodeJS.ProcessEnv, input: Partial<OAuth2Input> = {}, cacheDir = dir) {
    const log = captureWith(lib, "debug");
    const config = parseWith(lib, {
      issuer: world.idp.issuer,
      clientId: "opencode-ci",
      scopes: ["openid"],
      subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
      cache: "file",
      ...input,
    });
    return { provider: lib.createTokenProvider("miaou", config, { env, cacheDir, logger: log.logger }), log };
  }

  it("lets a second process of the same job reuse the first one's token: one grant for both", async () => {
    const before = world.idp.grants.length;
    const first = await processFor(jobEnv()).provider.getToken();
    const { provider: second, log } = processFor(jobEnv());
    const reused = await second.getToken();
    expect(fp(reused.value)).toBe(fp(first.value));
    expect(reused.expiresAt).toBe(first.expiresAt);
    expect(grantsSince(before)).toBe(1);
    expect(log.lines.some((l) => l["event"] === "token_from_file_cache")).toBe(true);
    // Exactly one file, holding no subject token.
    const files = await readdir(dir);
    expect(files).toHaveLength(1);
  });

  it("never shares across runs, run attempts or jobs", async () => {
    const before = world.idp.grants.length;
    await processFor(jobEnv({ GITHUB_RUN_ID: "7001" })).provider.getToken();
    await processFor(jobEnv({ GITHUB_RUN_ID: "7001", GITHUB_RUN_ATTEMPT: "2" })).provider.getToken();
    await processFor(jobEnv({ GITHUB_RUN_ID: "7001", GITHUB_JOB: "another-job" })).provider.getToken();
    expect(grantsSince(before)).toBe(3);
  });

  it("never shares across configs that shape the token differently (scopes)", async () => {
    const before = world.idp.grants.length;
    await processFor(jobEnv({ GITHUB_RUN_ID: "5001" }), { scopes: ["openid"] }).provider.getToken();
    await processFor(jobEnv({ GITHUB_RUN_ID: "5001" }), { scopes: ["openid", "models.read"] }).provider.getToken();
    expect(grantsSince(before)).toBe(2);
  });

  it("is skipped, with a warning, where the job cannot be identified", async () => {
    const env = jobEnv();
    delete env.GITHUB_RUN_ID;
    const before = world.idp.grants.length;
    const { provider, log } = processFor(env, {}, join(dir, "unidentified"));
    await provider.getToken();
    await processFor(env, {}, join(dir, "unidentified")).provider.getToken();
    expect(grantsSince(before)).toBe(2);
    expect(log.lines.some((l) => l["event"] === "file_cache_disabled" && l["level"] === 40)).toBe(true);
  });

  it("does not hand back a token the provider rejected (a 401 must not loop through the file)", async () => {
    const env = jobEnv({ GITHUB_RUN_ID: "4001" });
    const { provider } = processFor(env);
    const first = await provider.getToken();
    provider.invalidate(first.value);
    const before = world.idp.grants.length;
    const next = await provider.getToken();
    expect(fp(next.value)).not.toBe(fp(first.value));
    expect(grantsSince(before)).toBe(1);
    // The new token replaced the rejected one in the file: another process of the job reuses it.
    expect(fp((await processFor(env).provider.getToken()).value)).toBe(fp(next.value));
    expect(grantsSince(before)).toBe(1);
  });

  it("is off by default: nothing is written", async () => {
    const empty = join(dir, "default-off");
    const { provider } = processFor(jobEnv(), { cache: undefined }, empty);
    await provider.getToken();
    await expect(readdir(empty)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
