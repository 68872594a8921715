/**
 * Runs the real opencode CLI (npm `opencode-ai`) in a sandbox: its own HOME and XDG dirs, this package as `npm pack`
 * made it (test/support/packed-package.ts) installed where opencode caches npm plugins (so
 * `"plugin": ["opencode-ci-auth"]` loads it, by its npm name, without a registry), and npm kept offline so opencode's
 * background dependency install cannot stall.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { packedPackage } from "./packed-package.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/**
 * The opencode executable: the devDependency by default; `OPENCODE_CI_AUTH_OPENCODE_BIN` (a path) picks
 * another install, which is how `npm run test:compat` runs these tests against other opencode versions.
 */
const OPENCODE_BIN = process.env.OPENCODE_CI_AUTH_OPENCODE_BIN
  ? resolve(process.env.OPENCODE_CI_AUTH_OPENCODE_BIN)
  : join(REPO_ROOT, "node_modules", ".bin", "opencode");
/** The `@opencode-ai/plugin` package put into opencode's config dir; `OPENCODE_CI_AUTH_OPENCODE_PLUGIN_DIR` picks another. */
const OPENCODE_PLUGIN_PACKAGE = process.env.OPENCODE_CI_AUTH_OPENCODE_PLUGIN_DIR
  ? resolve(process.env.OPENCODE_CI_AUTH_OPENCODE_PLUGIN_DIR)
  : join(REPO_ROOT, "node_modules", "@opencode-ai", "plugin");
/**
 * opencode before 1.14 (measured: 1.3.2) empties `$XDG_CACHE_HOME/opencode` at start unless its `version` file holds
 * opencode's cache version, and installs npm plugins with `bun add` into `<cache>/node_modules`. When
 * `OPENCODE_CI_AUTH_OPENCODE_CACHE_VERSION` gives that value (test:compat reads it from the release under test), the
 * sandbox writes it and links our build there as well.
 */
const OPENCODE_CACHE_VERSION = process.env.OPENCODE_CI_AUTH_OPENCODE_CACHE_VERSION;

export interface Sandbox {
  root: string;
  home: string;
  project: string;
  env: NodeJS.ProcessEnv;
  /** Write the project's opencode.json. */
  writeConfig(config: unknown): Promise<void>;
  run(args: string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult>;
  /** opencode's own log files, concatenated. */
  readLogs(): Promise<string>;
  dispose(): Promise<void>;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

async function linkPackage(target: string, linkPath: string): Promise<void> {
  await mkdir(dirname(linkPath), { recursive: true });
  await symlink(target, linkPath, "dir");
}

export interface SandboxOptions {
  /**
   * `linked` (default): the packed package is put where opencode keeps npm plugins, so no registry is asked.
   * `none`: nothing is there; opencode installs the plugin itself from whatever registry the run's env names.
   */
  plugin?: "linked" | "none";
  /** The installed package to link; by default the one the vitest run packed (test/support/packed-package.ts). */
  packageDir?: string;
}

/** A fresh sandbox. `baseEnv` is the job's environment (CI variables); nothing of the caller's HOME leaks in. */
export async function createSandbox(baseEnv: NodeJS.ProcessEnv = {}, options: SandboxOptions = {}): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-e2e-"));
  const home = join(root, "home");
  const project = join(root, "project");
  const xdg = {
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_STATE_HOME: join(home, ".local", "state"),
  };
  await mkdir(project, { recursive: true });

  // Where opencode installs a bare npm plugin name (`<name>@latest`): the packed package, linked in.
  const linked = (options.plugin ?? "linked") === "linked";
  const packageDir = linked ? (options.packageDir ?? packedPackage().packageDir) : "";
  if (linked)
    await linkPackage(
      packageDir,
      join(xdg.XDG_CACHE_HOME, "opencode", "packages", "opencode-ci-auth@latest", "node_modules", "opencode-ci-auth"),
    );
  if (linked && OPENCODE_CACHE_VERSION) {
    const cacheDir = join(xdg.XDG_CACHE_HOME, "opencode");
    await writeFile(join(cacheDir, "version"), OPENCODE_CACHE_VERSION);
    // A range, not a version: opencode then only asks the registry whether its latest release satisfies it (always),
    // so it never replaces the link with a published release.
    await writeFile(join(cacheDir, "package.json"), JSON.stringify({ dependencies: { "opencode-ci-auth": "*" } }));
    await linkPackage(packageDir, join(cacheDir, "node_modules", "opencode-ci-auth"));
  }
  // opencode installs @opencode-ai/plugin into each config dir before loading plugins; pre-populate it.
  const globalConfigDir = join(xdg.XDG_CONFIG_HOME, "opencode");
  await mkdir(globalConfigDir, { recursive: true });
  const pluginVersion = JSON.parse(await readFile(join(OPENCODE_PLUGIN_PACKAGE, "package.json"), "utf8")).version as string;
  const sdkDependency = { dependencies: { "@opencode-ai/plugin": pluginVersion } };
  await writeFile(join(globalConfigDir, "package.json"), JSON.stringify(sdkDependency));
  // With a lockfile that agrees, opencode's dependency check finds the directory in sync and asks no registry (the
  // offline default needs no lockfile: npm fails fast there).
  if (!linked)
    await writeFile(
      join(globalConfigDir, "package-lock.json"),
      JSON.stringify({ name: "", lockfileVersion: 3, requires: true, packages: { "": sdkDependency } }),
    );
  await linkPackage(OPENCODE_PLUGIN_PACKAGE, join(globalConfigDir, "node_modules", "@opencode-ai", "plugin"));

  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: "C.UTF-8",
    HOME: home,
    ...xdg,
    // No registry traffic from the sandbox: fail fast instead of waiting on retries.
    npm_config_offline: "true",
    npm_config_fetch_retries: "0",
    npm_config_cache: join(home, ".npm"),
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_SHARE: "1",
    ...baseEnv,
  };

  return {
    root,
    home,
    project,
    env,
    async writeConfig(config) {
      await writeFile(join(project, "opencode.json"), JSON.stringify(config, null, 2));
    },
    run(args, options = {}) {
      return new Promise((resolveRun, reject) => {
        const started = performance.now();
        const child = spawn(OPENCODE_BIN, args, { cwd: project, env: { ...env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        // A deadline for a hung run; a loaded runner can take a minute for a run that takes 4 s alone.
        const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 240_000);
        child.on("error", reject);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolveRun({ code, stdout, stderr, durationMs: performance.now() - started });
        });
      });
    },
    async readLogs() {
      const dir = join(xdg.XDG_DATA_HOME, "opencode", "log");
      const files = await readdir(dir).catch(() => [] as string[]);
      const parts = await Promise.all(files.map((f) => readFile(join(dir, f), "utf8")));
      return parts.join("\n");
    },
    async dispose() {
      await rm(root, { recursive: true, force: true });
    },
  };
}
