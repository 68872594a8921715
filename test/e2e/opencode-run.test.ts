/**
 * End to end with the real opencode CLI: the issue's config (pointed at the loopback world), `opencode run`, and
 * what the model server, the IdP and the user's terminal saw. Each run gets its own HOME and XDG dirs.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createSandbox, type RunResult, type Sandbox } from "../support/opencode-cli.js";
import { githubActionsEnv, issueConfig as issueConfigFor } from "../support/issue-config.js";
import { startWorld, type World } from "../support/world.js";

// Each test runs the real opencode CLI once or more: a deadline sized for a loaded 2-core runner, not a wait.
vi.setConfig({ testTimeout: 300_000 });

let world: World;
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await world?.close();
});

const issueConfig = (oauth2Overrides: Record<string, unknown> = {}) => issueConfigFor(world, oauth2Overrides);
const githubEnv = () => githubActionsEnv(world);

async function runOpencode(
  config: unknown,
  env: NodeJS.ProcessEnv,
  prompt = "Say hello",
): Promise<{ result: RunResult; logs: string; sandbox: Sandbox }> {
  const sandbox = await createSandbox({ ...env, OPENCODE_CI_AUTH_LOG_LEVEL: "trace" });
  sandboxes.push(sandbox);
  await sandbox.writeConfig(config);
  const result = await sandbox.run(["run", "--print-logs", "--log-level", "DEBUG", "--model", "miaou/mock-model", prompt]);
  return { result, logs: await sandbox.readLogs(), sandbox };
}

/** Every secret the world ever handed out, plus the JWT signatures on their own. */
function allSecrets(extra: string[] = []): string[] {
  const jwts = [...world.ci.tokensIssued];
  const signatures = jwts.map((t) => t.split(".")[2] ?? "").filter((s) => s.length > 10);
  return [...jwts, ...signatures, ...world.idp.issuedTokens, world.ci.requestToken, ...extra];
}

function expectNoSecrets(texts: string[], extra: string[] = []): void {
  const secrets = allSecrets(extra);
  expect(secrets.length).toBeGreaterThan(2);
  for (const text of texts) for (const secret of secrets) expect(text.includes(secret), "a secret leaked into output").toBe(false);
}

/** The error opencode printed last, without colours: what the user reads first when a job fails. */
function finalError(stderr: string): string {
  // eslint-disable-next-line no-control-regex -- ANSI colour codes are what we strip
  const plain = stderr.replace(/\x1b\[[0-9;]*m/g, "");
  const at = plain.lastIndexOf("Error: ");
  return at === -1 ? "" : plain.slice(at);
}

function modelRequestsSince(index: number) {
  return world.model.requests.slice(index);
}

describe("opencode run with the plugin", () => {
  it("authenticates every request with an IdP-issued token, for one grant, and leaks nothing", async () => {
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    const { result, logs } = await runOpencode(issueConfig(), githubEnv());

    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");

    const requests = modelRequestsSince(requestsBefore);
    // Model discovery, the answer, and the title request all went through the plugin.
    expect(requests.map((r) => `${r.method} ${r.path}`)).toContain("GET /v1/models");
    expect(requests.filter((r) => r.path === "/v1/chat/completions").length).toBeGreaterThanOrEqual(1);
    for (const r of requests) {
      expect(r.status).toBe(200);
      const token = r.authorization?.replace(/^Bearer /, "");
      expect(token && world.idp.issuedTokens.has(token), "every request carries an IdP-issued token").toBe(true);
    }
    const grants = world.idp.grants.slice(grantsBefore);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({ ok: true, clientId: "opencode-ci", grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer" });

    // The plugin really logged at trace level (so the scan below scans something).
    expect(result.stderr).toContain('"event":"grant_succeeded"');
    expectNoSecrets([result.stdout, result.stderr, logs]);
  });

  it("runs token_exchange with a confidential client whose secret comes from {env:VAR}, and a GitLab id_token", async () => {
    const grantsBefore = world.idp.grants.length;
    const gitlabToken = await world.ci.mint({ aud: world.idp.issuer, style: "gitlab", claims: { project_path: "acme/app" } });
    const config = issueConfig({
      clientId: "ci-post",
      clientSecret: "{env:MIAOU_CLIENT_SECRET}",
      authFlow: "token_exchange",
      tokenExchangeAudience: "miaou-api",
      subjectTokenSource: { type: "gitlab", audience: world.idp.issuer },
    });
    const { result, logs } = await runOpencode(config, {
      OPENCODE_ID_TOKEN: gitlabToken,
      MIAOU_CLIENT_SECRET: world.idp.secrets.post,
      GITLAB_CI: "true",
    });

    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    const grants = world.idp.grants.slice(grantsBefore);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      ok: true,
      clientId: "ci-post",
      grantType: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience: "miaou-api",
    });
    expectNoSecrets([result.stdout, result.stderr, logs], [world.idp.secrets.post]);
  });

  it("refreshes once and retries when the provider answers 401", async () => {
    const grantsBefore = world.idp.grants.length;
    world.model.failNext401(1);
    const { result } = await runOpencode(issueConfig(), githubEnv());
    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    expect(world.idp.grants.slice(grantsBefore)).toHaveLength(2);
  });
});

describe('"cache": "file" across opencode runs of one job', () => {
  it("two runs share one grant, and the cache file is private", async () => {
    const shared = await createSandbox();
    sandboxes.push(shared);
    const cacheDir = `${shared.root}/job-cache`;
    const job = {
      ...githubEnv(),
      GITHUB_SERVER_URL: "https://github.com",
      GITHUB_REPOSITORY_ID: "42",
      GITHUB_RUN_ID: "77",
      GITHUB_RUN_ATTEMPT: "1",
      GITHUB_JOB: "ai",
      OPENCODE_CI_AUTH_CACHE_DIR: cacheDir,
    };
    const grantsBefore = world.idp.grants.length;
    for (let run = 0; run < 2; run++) {
      const { result } = await runOpencode(issueConfig({ cache: "file" }), job);
      expect(result.code, result.stderr.slice(-1500)).toBe(0);
      expect(result.stdout).toContain("Hello from the mock model");
    }
    expect(world.idp.grants.length - grantsBefore).toBe(1);
    const { readdir, stat } = await import("node:fs/promises");
    const files = await readdir(cacheDir);
    expect(files).toHaveLength(1);
    expect((await stat(cacheDir)).mode & 0o777).toBe(0o700);
    expect((await stat(`${cacheDir}/${files[0]}`)).mode & 0o777).toBe(0o600);
  });
});

describe("opencode run when something is wrong", () => {
  it("tells the user to add `permissions: id-token: write` when the GitHub variables are missing, and sends nothing", async () => {
    const requestsBefore = world.model.requests.length;
    const grantsBefore = world.idp.grants.length;
    const { result } = await runOpencode(issueConfig(), {});
    expect(result.code).not.toBe(0);
    expect(finalError(result.stderr)).toMatch(
      /^Error: opencode-ci-auth: provider "miaou": github_actions subject token: .*`permissions: id-token: write`.*fork/,
    );
    expect(world.idp.grants.length).toBe(grantsBefore);
    expect(world.model.requests.length).toBe(requestsBefore);
  });

  it("reports every problem of an invalid block, naming provider and field, and never sends a request", async () => {
    const requestsBefore = world.model.requests.length;
    const { result } = await runOpencode(issueConfig({ clientId: undefined, authFlow: "password" }), githubEnv());
    expect(result.code).not.toBe(0);
    const error = finalError(result.stderr);
    expect(error).toContain('opencode-ci-auth: provider "miaou": invalid configuration (2 problems)');
    expect(error).toContain("- oauth2.clientId: clientId is required");
    expect(error).toContain('- oauth2.authFlow: authFlow must be "jwt_bearer", "token_exchange" or "client_credentials"');
    expect(world.model.requests.length).toBe(requestsBefore);
  });

  it("fails a provider with listed models and an invalid block on its first request, not with a wrong header", async () => {
    const requestsBefore = world.model.requests.length;
    const config = issueConfig({ subjectTokenSource: { type: "github_actions", audience: 42 } });
    config.provider.miaou!.models = { "mock-model": { name: "Mock" } };
    const { result } = await runOpencode(config, githubEnv());
    expect(result.code).not.toBe(0);
    expect(finalError(result.stderr)).toContain("oauth2.subjectTokenSource.audience");
    expect(world.model.requests.length).toBe(requestsBefore);
  });

  it("keeps the IdP's error and error_description, and opencode does not retry the final error", async () => {
    const grantsBefore = world.idp.grants.length;
    world.ci.claims = { repository: "evil/fork" };
    try {
      const { result, logs } = await runOpencode(issueConfig(), githubEnv());
      expect(result.code).not.toBe(0);
      expect(finalError(result.stderr)).toMatch(
        /^Error: opencode-ci-auth: provider "miaou": the IdP refused the jwt_bearer grant \(invalid_grant: repository evil\/fork is not allowed\)/,
      );
      // The claims the IdP judged are logged beside the error, so the user can fix the trust policy.
      expect(result.stderr).toContain('"repository":"evil/fork"');
      // One attempt at model discovery, one per chat request; opencode's 5 retries would add more.
      const attempts = world.idp.grants.length - grantsBefore;
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(3);
      expect(logs).not.toMatch(/retrying|attempt=2/i);
      expectNoSecrets([result.stdout, result.stderr, logs]);
    } finally {
      world.ci.claims = {};
    }
  });
});
