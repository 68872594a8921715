/**
 * The core end-to-end scenarios, run by `npm run test:compat` against each opencode version of the matrix
 * (test/compat/versions.ts). `scripts/compat.ts` installs the version and points the harness at it with
 * OPENCODE_CI_AUTH_OPENCODE_BIN; OPENCODE_CI_AUTH_COMPAT_VERSION says which version that binary must report, so a run
 * can never pass against the wrong opencode. What "works with opencode X" means for this project is exactly this file.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSandbox, type RunResult, type Sandbox } from "../support/opencode-cli.js";
import { githubActionsEnv, issueConfig, PROVIDER_ID } from "../support/issue-config.js";
import { startWorld, type World } from "../support/world.js";

const MODEL = "mock-model";
let world: World;
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await world?.close();
});

async function run(config: unknown, env: NodeJS.ProcessEnv): Promise<RunResult> {
  const sandbox = await createSandbox(env);
  sandboxes.push(sandbox);
  await sandbox.writeConfig(config);
  return sandbox.run(["run", "--print-logs", "--model", `${PROVIDER_ID}/${MODEL}`, "Say hello"]);
}

/** The error opencode printed last, without colours. */
function finalError(stderr: string): string {
  // eslint-disable-next-line no-control-regex -- ANSI colour codes are what we strip
  const plain = stderr.replace(/\x1b\[[0-9;]*m/g, "");
  const at = plain.lastIndexOf("Error: ");
  return at === -1 ? "" : plain.slice(at);
}

/** Every request since `from` got 200 and carried an access token the IdP issued. */
function expectAllAuthorized(from: number): void {
  const requests = world.model.requests.slice(from);
  expect(requests.filter((r) => r.path.endsWith("/chat/completions")).length).toBeGreaterThanOrEqual(1);
  for (const r of requests) {
    expect(r.status, `${r.method} ${r.path}`).toBe(200);
    const token = r.authorization?.replace(/^Bearer /, "");
    expect(token !== undefined && world.idp.issuedTokens.has(token), `${r.method} ${r.path} carries an IdP-issued token`).toBe(true);
  }
}

describe(`opencode ${process.env.OPENCODE_CI_AUTH_COMPAT_VERSION ?? "(the devDependency)"} with the plugin`, () => {
  it("is the opencode version the matrix asked for", async () => {
    const expected = process.env.OPENCODE_CI_AUTH_COMPAT_VERSION;
    expect(expected, "OPENCODE_CI_AUTH_COMPAT_VERSION is set (run these through `npm run test:compat`)").toBeTruthy();
    // In a sandbox too: releases before 1.14 empty the cache dir of the HOME they start in.
    const sandbox = await createSandbox();
    sandboxes.push(sandbox);
    const printed = await sandbox.run(["--version"]);
    expect(printed.stdout.trim()).toBe(expected);
  });

  it("runs the issue's config: one grant, and every request carries an IdP-issued token", async () => {
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    const result = await run(issueConfig(world), githubActionsEnv(world));

    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    // No models listed: the plugin discovered them with the token.
    expect(world.model.requests.slice(requestsBefore).map((r) => `${r.method} ${r.path}`)).toContain("GET /v1/models");
    expectAllAuthorized(requestsBefore);
    const grants = world.idp.grants.slice(grantsBefore);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({ ok: true, clientId: "opencode-ci", grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer" });
  });

  it("answers a 401 with one refresh and one retry", async () => {
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    world.model.failNext401(1);
    const result = await run(issueConfig(world), githubActionsEnv(world));

    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    // The first grant's token got the 401; the plugin asked for a second one and the retry succeeded.
    const grants = world.idp.grants.slice(grantsBefore);
    expect(grants.map((g) => g.ok)).toEqual([true, true]);
    const statuses = world.model.requests.slice(requestsBefore).map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 401 && s !== 200)).toEqual([]);
  });

  it("uses declared models as they are, without discovery", async () => {
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    const config = issueConfig(world);
    config.provider[PROVIDER_ID]!.models = { [MODEL]: { name: "Mock" } };
    const result = await run(config, githubActionsEnv(world));

    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    expect(world.model.requests.slice(requestsBefore).map((r) => r.path)).not.toContain("/v1/models");
    expectAllAuthorized(requestsBefore);
    expect(world.idp.grants.slice(grantsBefore)).toHaveLength(1);
  });

  it("fails an invalid block with the plugin's error, naming provider and fields, and sends nothing", async () => {
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    const result = await run(issueConfig(world, { clientId: undefined, authFlow: "password" }), githubActionsEnv(world));

    expect(result.code).not.toBe(0);
    const error = finalError(result.stderr);
    expect(error).toContain('opencode-ci-auth: provider "miaou": invalid configuration (2 problems)');
    expect(error).toContain("- oauth2.clientId: clientId is required");
    expect(error).toMatch(/- oauth2\.authFlow: authFlow must be "jwt_bearer", "token_exchange"/);
    expect(world.model.requests.length).toBe(requestsBefore);
    expect(world.idp.grants.length).toBe(grantsBefore);
  });
});
