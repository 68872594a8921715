/**
 * The GitLab component's job (templates/opencode-run.yml), run for real by gitlab-ci-local with the shell executor:
 * its script installs this repository's packed build from a local npm registry into opencode's plugin cache, then
 * runs the real opencode CLI, whose plugin trades a GitLab-style ID token from the local CI issuer for an access
 * token at the local IdP and calls the mock model with it. Nothing is fetched from a public registry.
 */
import { execFile } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectNoLeak, type Secret } from "../support/harness.js";
import { issueConfig } from "../support/issue-config.js";
import { REPO_ROOT } from "../support/opencode-cli.js";
import { startWorld, type World } from "../support/world.js";
import {
  createComponentProject,
  gitlabCiLocal,
  missingPrerequisite,
  pipelineWith,
  type ComponentProject,
  type GitlabCiLocalResult,
} from "./support/gitlab-ci-local.js";
import {
  fromNpmOnThisNode,
  lockedTarballs,
  runtimeLockPaths,
  startLocalRegistry,
  type LocalRegistry,
  type RegistryRequest,
} from "./support/local-registry.js";
import { publishOpencodeSdk } from "./support/plugin-releases.js";

const run = promisify(execFile);
const JOB = "opencode-run";
/**
 * A job that runs opencode: ~7 s alone on an idle machine, 20-40 s on the shared 2-core one, over a minute beside the
 * rest of test/ci there. gitlab-ci-local is given the same bound, so a hung job still ends the test.
 */
const JOB_TIMEOUT = { timeout: 150_000 };
const PROMPT = `--version "$(touch pwned)" \`id\` $HOME; echo injected`;
const OPENCODE_VERSION = JSON.parse(await readFile(join(REPO_ROOT, "node_modules", "opencode-ai", "package.json"), "utf8"))
  .version as string;
const PLUGIN_VERSION = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")).version as string;
/** A release of the same files whose package.json has a postinstall script: it leaves this file in HOME if it runs. */
const SCRIPTED_VERSION = `${Number(PLUGIN_VERSION.split(".")[0]) + 9}.0.0`;
const POSTINSTALL_MARKER = "postinstall-ran";
/**
 * Whether the job's own npm made a registry request, not opencode. opencode 1.18 hands each plugin named in the config,
 * as written, to a second loader as well (its `config-plugin`), which here installs the bare name in the background
 * during the run, plugin cache or not; whether that reaches the plugin's tarball before the run ends is timing
 * (docs/performance.md).
 */
const byJob = fromNpmOnThisNode;
/** The folder the component's `cache:` keeps, relative to the checkout. */
const SDK_CACHE = ".opencode-ci-auth-cache";

let world: World;
let registry: LocalRegistry;
let scratch: string;
const projects: ComponentProject[] = [];

// gitlab-ci-local copies files with rsync, which a fresh developer machine may lack. There the job is skipped and
// says why; under CI (.ci/run installs rsync) a missing rsync is a failure, so the job always runs in CI.
const missing = missingPrerequisite();
const skipHere = missing !== undefined && process.env.CI !== "true";
if (skipHere) process.stderr.write(`test/ci/gitlab-component.test.ts: skipped: ${missing}\n`);

beforeAll(async () => {
  if (skipHere) return;
  if (missing) throw new Error(missing);
  await readFile(join(REPO_ROOT, "dist", "index.js")).catch(() => {
    throw new Error("dist/ is missing: run `npm run build` first (npm test does)");
  });
  scratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-gitlab-scratch-"));
  world = await startWorld();
  registry = await startLocalRegistry();
  const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], { cwd: REPO_ROOT });
  const [pack] = JSON.parse(packed.stdout) as Array<{ filename: string }>;
  if (!pack) throw new Error("npm pack produced no tarball");
  registry.publish(await readFile(join(scratch, pack.filename)));
  const scripted = join(scratch, "scripted");
  await mkdir(scripted);
  for (const file of ["dist", "README.md", "LICENSE"]) await cp(join(REPO_ROOT, file), join(scripted, file), { recursive: true });
  const { scripts: _scripts, ...manifest } = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as Record<string, unknown>;
  const postinstall = `node -e "require('fs').writeFileSync(require('path').join(process.env.HOME, '${POSTINSTALL_MARKER}'), '')"`;
  await writeFile(
    join(scripted, "package.json"),
    JSON.stringify({ ...manifest, version: SCRIPTED_VERSION, scripts: { postinstall } }, null, 2),
  );
  const scriptedPack = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch, scripted], { cwd: scratch });
  registry.publish(await readFile(join(scratch, (JSON.parse(scriptedPack.stdout) as Array<{ filename: string }>)[0]!.filename)), {
    tag: null,
  });
  for (const tarball of await lockedTarballs(REPO_ROOT, await runtimeLockPaths(REPO_ROOT), join(scratch, "deps"))) {
    registry.publish(tarball, { tag: null });
  }
  // opencode's plugin SDK, which the job's `opencode-ci-auth prepare` installs into opencode's config directories.
  await publishOpencodeSdk(registry);
  // The job finds this opencode on PATH at the version it asks for, so it does not install it from npm.
  await mkdir(join(scratch, "bin"));
  await symlink(join(REPO_ROOT, "node_modules", ".bin", "opencode"), join(scratch, "bin", "opencode"));
  // An `opencode` that only records, for each call, its first argument and the allow-list variables it was given.
  await mkdir(join(scratch, "recording-bin"));
  const report = (name: string) => `${name}=\${${name}-<unset>}`;
  await writeFile(
    join(scratch, "recording-bin", "opencode"),
    `#!/bin/sh\nprintf '%s %s %s %s %s\\n' "$1" "${report("OPENCODE_CI_AUTH_ALLOWED_ISSUERS")}" "${report("OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS")}" "${report("OPENCODE_CI_AUTH_ALLOWED_AUDIENCES")}" "${report("OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS")}" >> "$OPENCODE_TEST_RECORD"\n` +
      `if [ "$1" = --version ]; then echo ${OPENCODE_VERSION}; else echo "recorded"; fi\n`,
  );
  await chmod(join(scratch, "recording-bin", "opencode"), 0o755);
});

afterAll(async () => {
  await Promise.all(projects.map((p) => p.dispose()));
  await registry?.close();
  await world?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** What a GitLab runner would hand the job's shell, less the CI/CD variables: a clean HOME, npm on the local registry. */
function runnerEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: [join(scratch, "bin"), dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":"),
    LANG: "C.UTF-8",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_STATE_HOME: join(home, ".local", "state"),
    npm_config_registry: registry.url,
    npm_config_cache: join(home, ".npm"),
    npm_config_fetch_retries: "0",
    npm_config_update_notifier: "false",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_SHARE: "1",
    // The most verbose level, so the leak scan below covers every log line the plugin can write.
    OPENCODE_CI_AUTH_LOG_LEVEL: "trace",
  };
}

interface JobRun {
  project: ComponentProject;
  result: GitlabCiLocalResult;
  output: string;
  home: string;
}

interface RunOptions {
  /**
   * Lays out the runner's HOME before the job, as an earlier job on a runner that keeps it would have left it, and
   * the checkout, as GitLab leaves it once it has restored the job's cache.
   */
  prepare?: (home: string, projectDir: string) => Promise<void>;
  /** Changes to the runner's environment. */
  env?: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
}

/** Runs the component's job with `inputs`, the world's opencode.json at `.opencode-ci/`, and `variables` as CI/CD variables. */
async function runJob(
  inputs: Record<string, string | boolean>,
  variables: Record<string, string>,
  options: RunOptions = {},
): Promise<JobRun> {
  const config = issueConfig(world, { subjectTokenSource: { type: "gitlab", audience: world.idp.issuer } });
  const project = await createComponentProject(pipelineWith(inputs), { ".opencode-ci/opencode.json": JSON.stringify(config, null, 2) });
  projects.push(project);
  const home = join(project.root, "home");
  await mkdir(home);
  await options.prepare?.(home, project.dir);
  const variablesFile = join(project.root, "variables.yml");
  await writeFile(
    variablesFile,
    Object.entries(variables)
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`)
      .join(""),
  );
  const env = options.env ? options.env(runnerEnv(home)) : runnerEnv(home);
  const result = await gitlabCiLocal(
    project.dir,
    ["--variables-file", variablesFile, "--force-shell-executor", JOB],
    env,
    JOB_TIMEOUT.timeout - 10_000,
  );
  return { project, result, output: `${result.stdout}\n${result.stderr}`, home };
}

const baseInputs = () => ({ model: "miaou/mock-model", prompt: PROMPT, audience: world.idp.issuer, "opencode-version": OPENCODE_VERSION });

/** Every secret the world handed out: the CI tokens, their signatures alone, the access tokens. */
function secrets(): Secret[] {
  const secrets = world.ci.tokensIssued.flatMap((value, i) => [
    { label: `CI token #${i}`, value },
    { label: `CI token #${i} signature`, value: value.split(".")[2] ?? "" },
  ]);
  secrets.push(...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })));
  expect(secrets.length).toBeGreaterThan(2);
  return secrets;
}

describe.skipIf(skipHere)("GitLab component opencode-run, run by gitlab-ci-local", () => {
  it("installs the plugin where opencode loads it and runs opencode with an IdP-issued token, leaking no token", JOB_TIMEOUT, async () => {
    const token = await world.ci.mint({ aud: world.idp.issuer, style: "gitlab" });
    const grantsBefore = world.idp.grants.length;
    const requestsBefore = world.model.requests.length;
    const { project, result, output, home } = await runJob(baseInputs(), { OPENCODE_ID_TOKEN: token });

    expect(result.code, output.slice(-4000)).toBe(0);
    expect(output).toMatch(/PASS\s+opencode-run/);
    expect(output).toContain(`opencode-run: opencode ${OPENCODE_VERSION} is already installed`);
    expect(output).toContain(`opencode-run: opencode-ci-auth ${PLUGIN_VERSION}`);

    // prepare put opencode's SDK, at opencode's version, into the global config dir and OPENCODE_CONFIG_DIR, in the
    // form opencode accepts as installed (test/cli/prepare.test.ts shows a run then asks the registry for nothing).
    for (const dir of [join(home, ".config", "opencode"), join(project.dir, ".opencode-ci")]) {
      expect(output).toContain(`opencode-ci-auth prepare: prepared ${dir}`);
      const sdk = JSON.parse(await readFile(join(dir, "node_modules", "@opencode-ai", "plugin", "package.json"), "utf8")) as {
        version: string;
      };
      expect(sdk.version, dir).toBe(OPENCODE_VERSION);
      const lock = JSON.parse(await readFile(join(dir, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dependencies?: object }>;
      };
      expect(lock.packages[""]?.dependencies, dir).toEqual({ "@opencode-ai/plugin": OPENCODE_VERSION });
    }

    // The cache is off by default: prepare installed nothing there, and the folder the job's `cache:` saves holds only
    // the .gitignore that keeps it out of git.
    expect(output).not.toContain("into the cache");
    expect(await readdir(join(project.dir, SDK_CACHE))).toEqual([".gitignore"]);
    const { stdout: untracked } = await run("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: project.dir });
    expect(untracked).not.toContain(SDK_CACHE);

    // The template's npm install put the packed build where opencode looks for a bare "opencode-ci-auth".
    const installed = join(home, ".cache", "opencode", "packages", "opencode-ci-auth@latest");
    expect(JSON.parse(await readFile(join(installed, "package.json"), "utf8"))).toEqual({
      dependencies: { "opencode-ci-auth": PLUGIN_VERSION },
    });
    expect(registry.requestsFor("opencode-ci-auth").filter((r) => byJob(r) && r.path.startsWith("/-/tarballs/"))).toHaveLength(1);

    // One jwt-bearer grant with the GitLab token, and every model request carried the access token it returned.
    const grants = world.idp.grants.slice(grantsBefore);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      ok: true,
      clientId: "opencode-ci",
      grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      repository: "acme/app",
    });
    const requests = world.model.requests.slice(requestsBefore);
    const chats = requests.filter((r) => r.path === "/v1/chat/completions");
    expect(chats.length).toBeGreaterThanOrEqual(1);
    for (const r of requests) {
      expect(r.status).toBe(200);
      const bearer = r.authorization?.replace(/^Bearer /, "");
      expect(bearer && world.idp.issuedTokens.has(bearer), "every request carries an IdP-issued token").toBe(true);
    }

    // The prompt arrived as one literal argument: not an option, no substitution, no command run. (opencode run
    // wraps an argument that contains spaces in double quotes, escaping the ones inside, with or without `--`.)
    const userMessages = chats.flatMap((r) =>
      (r.body as { messages: Array<{ role: string; content: unknown }> }).messages.filter((m) => m.role === "user"),
    );
    expect(userMessages.map((m) => m.content)).toContain(`"${PROMPT.replaceAll('"', '\\"')}"`);
    await expect(readFile(join(project.dir, "pwned"))).rejects.toThrow();

    const artifact = await project.artifact(JOB, "opencode-output.md");
    expect(artifact).toContain("Hello from the mock model");
    const log = await project.jobLog(JOB);
    expect(log).toContain("Hello from the mock model");
    expectNoLeak([output, log, artifact], secrets());
  });

  it('with plugin-version pinned, a bare "opencode-ci-auth" in the config loads the pinned version', JOB_TIMEOUT, async () => {
    const token = await world.ci.mint({ aud: world.idp.issuer, style: "gitlab" });
    const grantsBefore = world.idp.grants.length;
    const { result, output, home } = await runJob({ ...baseInputs(), "plugin-version": PLUGIN_VERSION }, { OPENCODE_ID_TOKEN: token });

    expect(result.code, output.slice(-4000)).toBe(0);
    const packages = join(home, ".cache", "opencode", "packages");
    expect(JSON.parse(await readFile(join(packages, `opencode-ci-auth@${PLUGIN_VERSION}`, "package.json"), "utf8"))).toEqual({
      dependencies: { "opencode-ci-auth": PLUGIN_VERSION },
    });
    expect(
      JSON.parse(await readFile(join(packages, "opencode-ci-auth@latest", "node_modules", "opencode-ci-auth", "package.json"), "utf8"))
        .version,
    ).toBe(PLUGIN_VERSION);
    expect(world.idp.grants.slice(grantsBefore)).toMatchObject([{ ok: true }]);
    expectNoLeak([output], secrets());
  });

  it("fails before installing anything when the config is missing, naming the path", async () => {
    const { result, output } = await runJob({ ...baseInputs(), "config-path": "ci/ai/opencode.json" }, { OPENCODE_ID_TOKEN: "unused" });
    expect(result.code).not.toBe(0);
    expect(output).toMatch(/FAIL\s+opencode-run/);
    expect(output).toContain(
      "opencode-run: no opencode config at ci/ai/opencode.json (input config-path, relative to the project directory)",
    );
    expect(output).not.toContain("# opencode-run: install opencode"); // the next script item never started
  });

  it("fails with the variable's name when the ID token is missing", async () => {
    const { result, output } = await runJob({ ...baseInputs(), "id-token-var": "MY_GITLAB_TOKEN" }, {});
    expect(result.code).not.toBe(0);
    expect(output).toContain("opencode-run: the ID token variable MY_GITLAB_TOKEN is empty");
    expect(output).not.toContain("# opencode-run: install opencode");
  });

  it("reinstalls a plugin of another version that it finds in opencode's cache, with install scripts off", JOB_TIMEOUT, async () => {
    const token = await world.ci.mint({ aud: world.idp.issuer, style: "gitlab" });
    const grantsBefore = world.idp.grants.length;
    const dir = (home: string) => join(home, ".cache", "opencode", "packages", `opencode-ci-auth@${SCRIPTED_VERSION}`);
    const { result, output, home } = await runJob(
      { ...baseInputs(), "plugin-version": SCRIPTED_VERSION },
      { OPENCODE_ID_TOKEN: token },
      {
        // What a runner that keeps HOME may hold: the directory of the pinned spec, with another version in it.
        prepare: async (h) => {
          await mkdir(join(dir(h), "node_modules", "opencode-ci-auth"), { recursive: true });
          await writeFile(
            join(dir(h), "node_modules", "opencode-ci-auth", "package.json"),
            JSON.stringify({ name: "opencode-ci-auth", version: "0.0.1" }),
          );
        },
      },
    );

    expect(result.code, output.slice(-4000)).toBe(0);
    expect(output).toContain(
      `opencode-run: opencode's plugin cache holds opencode-ci-auth 0.0.1 in ${dir(home)}, not ${SCRIPTED_VERSION} (plugin-version ${SCRIPTED_VERSION}): reinstalling`,
    );
    expect(JSON.parse(await readFile(join(dir(home), "node_modules", "opencode-ci-auth", "package.json"), "utf8")).version).toBe(
      SCRIPTED_VERSION,
    );
    // The release's postinstall script did not run (npm runs a dependency's install scripts unless told not to).
    await expect(stat(join(home, POSTINSTALL_MARKER))).rejects.toThrow();
    expect(world.idp.grants.slice(grantsBefore)).toMatchObject([{ ok: true }]);
  });

  it("keeps the right plugin it finds; uses the checked SDK its cache restores", { timeout: 2 * JOB_TIMEOUT.timeout }, async () => {
    const first = await runJob(
      { ...baseInputs(), "plugin-version": PLUGIN_VERSION, cache: true },
      { OPENCODE_ID_TOKEN: await world.ci.mint({ aud: world.idp.issuer, style: "gitlab" }) },
    );
    expect(first.result.code, first.output.slice(-4000)).toBe(0);
    // With cache on, prepare installed the SDK into the folder the job's `cache:` saves, which git ignores.
    const cached = join(first.project.dir, SDK_CACHE, `@opencode-ai+plugin@${OPENCODE_VERSION}`);
    expect(first.output).toContain(`opencode-ci-auth prepare: installed @opencode-ai/plugin@${OPENCODE_VERSION} into the cache ${cached}`);
    await stat(join(cached, "node_modules", "@opencode-ai", "plugin", "package.json"));
    const { stdout: untracked } = await run("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: first.project.dir });
    expect(untracked).not.toContain(SDK_CACHE);
    const before = registry.requestsFor("opencode-ci-auth").length;
    const tarballsBefore = registry.requests.length;
    const token = await world.ci.mint({ aud: world.idp.issuer, style: "gitlab" });
    const { result, output } = await runJob(
      { ...baseInputs(), "plugin-version": PLUGIN_VERSION, cache: true },
      { OPENCODE_ID_TOKEN: token },
      {
        prepare: async (home, projectDir) => {
          await cp(join(first.home, ".cache"), join(home, ".cache"), { recursive: true, verbatimSymlinks: true });
          // What GitLab restores from the first job's `cache:` (the shell executor here runs in the checkout itself).
          await cp(join(first.project.dir, SDK_CACHE), join(projectDir, SDK_CACHE), { recursive: true, verbatimSymlinks: true });
        },
      },
    );
    expect(result.code, output.slice(-4000)).toBe(0);
    expect(output).toContain(`opencode-run: opencode-ci-auth@${PLUGIN_VERSION} is already in opencode's plugin cache`);
    expect(output).toMatch(/opencode-ci-auth prepare: the cached install in \S+ matches the registry, file for file/);
    expect(output).not.toContain("refused the cached install");
    // The version was resolved (its packument), and the job fetched no tarball of the plugin or its dependencies.
    // (prepare fetches opencode's SDK tarballs to check the restored cache, and for OPENCODE_CONFIG_DIR.)
    expect(
      registry
        .requestsFor("opencode-ci-auth")
        .slice(before)
        .map((r) => r.path),
    ).toContain("/opencode-ci-auth");
    const lock = JSON.parse(await readFile(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version: string }>;
    };
    const runtime = new Set(
      (await runtimeLockPaths(REPO_ROOT)).map(
        (p) => `/-/tarballs/${(p.split("node_modules/").at(-1) ?? "").replace("/", "-")}-${lock.packages[p]?.version}.tgz`,
      ),
    );
    const tarballs = (from: (r: RegistryRequest) => boolean) =>
      registry.requests
        .slice(tarballsBefore)
        .filter((r) => from(r) && r.path.startsWith("/-/tarballs/"))
        .map((r) => r.path);
    expect(tarballs(byJob).filter((p) => runtime.has(p) || p.startsWith("/-/tarballs/opencode-ci-auth-"))).toEqual([]);
    // opencode fetches nothing of its SDK (prepared), and of the plugin at most its own second install (see byJob).
    expect(tarballs((r) => !byJob(r)).filter((p) => !p.startsWith("/-/tarballs/opencode-ci-auth-"))).toEqual([]);
  });

  it("gives `opencode run`, and only it, the allow-lists that are not empty, verbatim", JOB_TIMEOUT, async () => {
    const issuers = "https://idp.example/realms/a,https://idp.example/realms/$HOME/$(id)";
    const endpoints = "https://idp.example/token";
    const sourceUrls = "https://tokens.example/ci?aud=api%3A%2F%2Fopencode&job=$CI_JOB_ID";
    const { project, result, output } = await runJob(
      {
        ...baseInputs(),
        "allowed-issuers": issuers,
        "allowed-token-endpoints": endpoints,
        "allowed-audiences": "",
        "allowed-source-urls": sourceUrls,
      },
      { OPENCODE_ID_TOKEN: "unused" },
      {
        env: (env) => ({
          ...env,
          PATH: `${join(scratch, "recording-bin")}:${env.PATH}`,
          OPENCODE_TEST_RECORD: join(scratch, `record-${projects.length}`),
        }),
      },
    );
    expect(result.code, output.slice(-4000)).toBe(0);
    const record = (await readFile(join(scratch, `record-${projects.length}`), "utf8")).trim().split("\n");
    const unset =
      "OPENCODE_CI_AUTH_ALLOWED_ISSUERS=<unset> OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS=<unset> OPENCODE_CI_AUTH_ALLOWED_AUDIENCES=<unset> OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS=<unset>";
    // --version: the install check, the version it prints, and prepare's (which matches opencode's SDK to it).
    expect(record).toEqual([
      `--version ${unset}`,
      `--version ${unset}`,
      `--version ${unset}`,
      `run OPENCODE_CI_AUTH_ALLOWED_ISSUERS=${issuers} OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS=${endpoints} OPENCODE_CI_AUTH_ALLOWED_AUDIENCES=<unset> OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS=${sourceUrls}`,
    ]);
    expect(await project.artifact(JOB, "opencode-output.md")).toBe("recorded\n");
  });
});
