/**
 * `opencode-ci-auth token`, run as the built command (dist/cli/main.js) in a child process against the loopback
 * world: it prints a fresh IdP-issued token, masks it first on GitHub Actions, hands it to $GITHUB_OUTPUT, and
 * never puts it on stderr. Each test has its own world and project, so the tests run concurrently.
 *
 * Tokens are only ever compared as booleans (or fingerprints): a failing assertion never prints one. stderr is
 * scanned for every secret; stdout for every secret but the access token it is meant to carry.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { assertBuilt, createCliProject } from "../support/cli.js";
import type { CliProject, CliResult } from "../support/cli.js";
import { expectNoLeak, fp } from "../support/harness.js";
import type { Secret } from "../support/harness.js";
import { IDP_CLIENTS } from "../support/idp.js";
import { startWorld } from "../support/world.js";
import type { World, WorldOptions } from "../support/world.js";

const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await assertBuilt();
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface Scene {
  world: World;
  project: CliProject;
  /** Runs `opencode-ci-auth token …`; checks stderr for every secret and stdout for every secret but access tokens. */
  token(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  /** A job with `permissions: id-token: write` (GITHUB_ACTIONS unset unless `extra` sets it). */
  jobEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

async function scene(options: WorldOptions = {}, oauth2: Record<string, unknown> = {}): Promise<Scene> {
  const world = await startWorld(options);
  cleanups.push(() => world.close());
  const project = await createCliProject();
  cleanups.push(() => project.dispose());
  await project.writeConfig({
    provider: {
      miaou: {
        options: {
          baseURL: world.model.baseURL,
          oauth2: {
            issuer: world.idp.issuer,
            clientId: IDP_CLIENTS.none,
            scopes: ["models.read"],
            subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
            ...oauth2,
          },
        },
      },
    },
  });
  const jobSecrets = (): Secret[] => [
    ...world.ci.tokensIssued.flatMap((value, i) => [
      { label: `CI token #${i}`, value },
      { label: `CI token #${i} signature`, value: value.split(".")[2] ?? "" },
    ]),
    { label: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", value: world.ci.requestToken },
    { label: "ci-post client secret", value: world.idp.secrets.post },
    { label: "ci-basic client secret", value: world.idp.secrets.basic },
  ];
  const accessTokens = (): Secret[] => [...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value }));
  return {
    world,
    project,
    async token(args, env = {}) {
      const run = await project.run(["token", ...args], env);
      // The one place an access token may appear on stderr is the mask line, which GitHub's runner consumes.
      const withoutMask = run.stderr
        .split("\n")
        .filter((l) => !l.startsWith("::add-mask::"))
        .join("\n");
      expectNoLeak([withoutMask], [...jobSecrets(), ...accessTokens()]);
      expectNoLeak([run.stderr], jobSecrets());
      expectNoLeak([run.stdout], jobSecrets());
      return run;
    },
    jobEnv: (extra = {}) => ({
      ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
      ...extra,
    }),
  };
}

/** Whether `value` is an access token this IdP issued and still honours. */
async function isLive(world: World, value: string | undefined): Promise<boolean> {
  return value !== undefined && world.idp.issuedTokens.has(value) && (await world.idp.isValidAccessToken(value));
}

/** JSON.parse whose error never quotes its input (which may hold a token). */
function parseJson(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not JSON (${text.length} chars, ${fp(text)})`);
  }
}

/** Exit 1 with nothing on stdout (checked without quoting stdout), and, when given, exactly `stderr`. */
function expectFailure(run: CliResult, stderr?: string): void {
  expect(run.stdout.length, "nothing on stdout").toBe(0);
  expect(run.code).toBe(1);
  if (stderr !== undefined) expect(run.stderr).toBe(stderr);
}

/** Keeps the stderr of a failing run quoted in docs/doctor.md, when OPENCODE_CI_AUTH_CAPTURE_DIR is set. */
async function captureStderr(name: string, run: CliResult): Promise<void> {
  const dir = process.env.OPENCODE_CI_AUTH_CAPTURE_DIR;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.stderr.txt`), run.stderr);
}

describe.concurrent("token", () => {
  it("prints a fresh IdP-issued token, one line, that the model server accepts", async () => {
    const { world, token, jobEnv } = await scene();

    const run = await token(["--provider", "miaou"], jobEnv());

    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout.endsWith("\n")).toBe(true);
    const printed = run.stdout.slice(0, -1);
    expect(/^\S+$/.test(printed), "one line, no spaces").toBe(true);
    expect(await isLive(world, printed)).toBe(true);
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: true, clientId: IDP_CLIENTS.none, scope: "models.read" })]);
    const models = await fetch(`${world.model.baseURL}/models`, { headers: { authorization: `Bearer ${printed}` } });
    expect(models.status).toBe(200);
  });

  it("on GitHub Actions, `::add-mask::<token>` goes to stderr before the token goes to stdout, which holds only the token", async () => {
    const { world, token, jobEnv } = await scene();

    const run = await token(["-p", "miaou"], jobEnv({ GITHUB_ACTIONS: "true", OPENCODE_CI_AUTH_LOG_LEVEL: "trace" }));

    expect(run.code).toBe(0);
    // So TOKEN=$(opencode-ci-auth token -p miaou) captures the token and nothing else.
    const [printed, ...rest] = run.stdout.split("\n");
    expect(rest.length === 1 && rest[0] === "", "exactly one line").toBe(true);
    expect(await isLive(world, printed)).toBe(true);
    // The runner reads workflow commands from stderr too: the mask line is there, exactly once, on a line of its own.
    const maskLines = run.stderr.split("\n").filter((l) => l.startsWith("::add-mask::"));
    expect(maskLines.length).toBe(1);
    expect(maskLines[0] === `::add-mask::${printed}`, "the mask line masks the printed token").toBe(true);
    // The logs really were written (so the scan of stderr above scanned something) and stayed off stdout.
    expect(run.stderr).toContain("access token issued");
  });

  it("--github-output NAME writes NAME<<delimiter / token / delimiter to $GITHUB_OUTPUT; stdout is empty, the mask on stderr", async () => {
    const { world, project, token, jobEnv } = await scene();
    const output = project.path("github-output");
    await writeFile(output, "previous=1\n");

    const run = await token(
      ["--provider", "miaou", "--github-output", "model_token"],
      jobEnv({ GITHUB_ACTIONS: "true", GITHUB_OUTPUT: output }),
    );

    expect(run.code).toBe(0);
    const written = await readFile(output, "utf8");
    const match = /^previous=1\nmodel_token<<(ghadelimiter_[0-9a-f]{32})\n([^\n]+)\n\1\n$/.exec(written);
    expect(match !== null, `$GITHUB_OUTPUT has the heredoc form (${written.length} chars)`).toBe(true);
    const value = match?.[2];
    expect(await isLive(world, value)).toBe(true);
    expect(run.stdout).toBe("");
    expect(run.stderr === `::add-mask::${value}\n`, "stderr is the mask line and nothing else").toBe(true);
  });

  it("--json: access_token, token_type, expires_at (ISO), scope", async () => {
    const { world, token, jobEnv } = await scene();
    const before = Date.now();

    const run = await token(["--provider", "miaou", "--json"], jobEnv());

    expect(run.code).toBe(0);
    expect(run.stdout.endsWith("}\n")).toBe(true);
    const body = parseJson(run.stdout);
    expect(Object.keys(body).sort()).toEqual(["access_token", "expires_at", "scope", "token_type"]);
    expect(await isLive(world, body["access_token"] as string)).toBe(true);
    const { access_token: _secret, ...meta } = body;
    expect(meta).toEqual({
      token_type: "Bearer",
      scope: "models.read",
      expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    // The IdP's 600 s lifetime.
    const expiresAt = Date.parse(meta.expires_at as string);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 595_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);
  });

  it("--json with --github-output on GitHub Actions: the JSON without access_token on stdout, the mask on stderr", async () => {
    const { world, project, token, jobEnv } = await scene();
    const output = project.path("github-output");
    await writeFile(output, "");

    const run = await token(
      ["--provider", "miaou", "--json", "--github-output", "TOKEN"],
      jobEnv({ GITHUB_ACTIONS: "true", GITHUB_OUTPUT: output }),
    );

    expect(run.code).toBe(0);
    const [json, ...rest] = run.stdout.split("\n");
    expect(rest.length === 1 && rest[0] === "", "exactly one line").toBe(true);
    expect(await isLive(world, run.stderr.trim().replace(/^::add-mask::/, ""))).toBe(true);
    const body = parseJson(json ?? "");
    expect(Object.keys(body).sort()).toEqual(["expires_at", "scope", "token_type"]);
    expect(await isLive(world, /^TOKEN<<(\S+)\n(\S+)\n\1\n$/.exec(await readFile(output, "utf8"))?.[2])).toBe(true);
  });
});

describe.concurrent("token: failures exit 1, print no token", () => {
  it("an unknown provider", async () => {
    const { world, token, jobEnv } = await scene();
    const run = await token(["--provider", "nope"], jobEnv());
    expectFailure(
      run,
      'opencode-ci-auth: provider "nope" has no options.oauth2 in the opencode config (run `opencode-ci-auth doctor` to see what was found)\n',
    );
    expect(world.idp.grants).toEqual([]);
  });

  it("--github-output without $GITHUB_OUTPUT, before any grant", async () => {
    const { world, token, jobEnv } = await scene();
    const run = await token(["--provider", "miaou", "--github-output", "TOKEN"], jobEnv({ GITHUB_ACTIONS: "true" }));
    expectFailure(
      run,
      "opencode-ci-auth: --github-output needs $GITHUB_OUTPUT, which GitHub Actions sets in every step; it is not set here\n",
    );
    expect(world.idp.grants).toEqual([]);
    expect(world.ci.tokensIssued).toEqual([]);
  });

  it("an output name GitHub would not accept", async () => {
    const { project, token, jobEnv } = await scene();
    const run = await token(["--provider", "miaou", "--github-output", "my token"], jobEnv({ GITHUB_OUTPUT: project.path("out") }));
    expectFailure(run, 'opencode-ci-auth: --github-output: "my token" is not a valid output name\n');
  });

  it("a refused grant: the IdP's words on stderr, nothing on stdout (not even a mask line)", async () => {
    const { world, token, jobEnv } = await scene({ ci: { defaultClaims: { repository: "acme/other" } } });

    const run = await token(["--provider", "miaou"], jobEnv({ GITHUB_ACTIONS: "true" }));

    expectFailure(run);
    expect(run.stderr).toContain(
      'opencode-ci-auth: provider "miaou": the IdP refused the jwt_bearer grant (invalid_grant: repository acme/other is not allowed).',
    );
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: false, error: "invalid_grant" })]);
  });

  it("a job on the wrong branch for expectClaims: the claim table on stderr, no grant", async () => {
    const { world, token, jobEnv } = await scene(
      { ci: { defaultClaims: { ref: "refs/heads/feature-x" } } },
      { expectClaims: { ref: "refs/heads/main" } },
    );

    const run = await token(["--provider", "miaou"], jobEnv());
    await captureStderr("token-wrong-branch", run);

    expectFailure(run);
    expect(run.stderr).toContain(
      "github_actions subject token: the job's claims do not match oauth2.expectClaims, so the IdP would refuse them (nothing was sent):\n  ref  refs/heads/feature-x  ✗ expected refs/heads/main\n",
    );
    expect(world.idp.grants).toEqual([]);
  });

  it("an invalid oauth2 block: every problem, by field", async () => {
    const { token, jobEnv } = await scene({}, { authFlow: "magic", clientId: undefined });

    const run = await token(["--provider", "miaou"], jobEnv());

    expectFailure(run);
    expect(run.stderr).toContain('opencode-ci-auth: provider "miaou": invalid configuration (2 problems):\n');
    expect(run.stderr).toContain("  - oauth2.clientId: clientId is required\n");
    expect(run.stderr).toContain('  - oauth2.authFlow: authFlow must be "jwt_bearer", "token_exchange" or "client_credentials"\n');
  });
});
