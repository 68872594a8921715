/**
 * A fresh "runner" for one job of test/ci: its own HOME (no XDG_* variables, as on a GitHub-hosted runner), workspace
 * and RUNNER_TEMP, npm pointed at the local registry, and helpers to run the setup action and the real opencode CLI
 * the way a later step of the job would.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

import { parse } from "yaml";

import { REPO_ROOT } from "../../support/opencode-cli.js";
import {
  runCompositeAction,
  runSteps,
  type ActionDefinition,
  type ActionRun,
  type RunResult,
  type Strings,
  type Stub,
} from "./action-runner.js";
import { cacheStub, setupNodeStub } from "./action-stubs.js";
import type { LocalRegistry } from "./local-registry.js";
import { seedOpencodeSdk } from "./plugin-releases.js";

export const SETUP_ACTION = join(REPO_ROOT, ".github", "actions", "setup");
export const OPENCODE_BIN = join(REPO_ROOT, "node_modules", ".bin", "opencode");

/** PATH without any directory that holds an `opencode` command, so only one the job installs can be found. */
export function pathWithoutOpencode(path = process.env.PATH ?? ""): string {
  return path
    .split(delimiter)
    .filter((dir) => dir && !existsSync(join(dir, "opencode")))
    .join(delimiter);
}

export interface Job {
  root: string;
  home: string;
  workspace: string;
  runnerTemp: string;
  /** The job's environment before its first step. */
  env: NodeJS.ProcessEnv;
  /** `~/.cache/opencode/packages`, where opencode 1.18 installs npm plugins when XDG_CACHE_HOME is unset. */
  packagesDir: string;
  setupAction(inputs: Strings, stubs?: Record<string, Stub>): Promise<ActionRun>;
  /** The setup action's steps up to and including its `resolve` step: `npm view` and the version choice, no install. */
  resolveOnly(inputs: Strings): Promise<RunResult>;
  /** Runs a command as a later `run:` step would see it: the job env, plus what earlier steps added to PATH. */
  exec(
    command: string,
    args: string[],
    options?: { env?: NodeJS.ProcessEnv; path?: string[]; cwd?: string; timeoutMs?: number },
  ): Promise<Exec>;
  dispose(): Promise<void>;
}

export interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface JobOptions {
  registry: LocalRegistry;
  /** A cache store shared between jobs (one per test file), as GitHub's cache service is. */
  cache?: ReturnType<typeof cacheStub>;
  env?: NodeJS.ProcessEnv;
  /** A HOME kept between jobs, as on a self-hosted runner (default: a new one). dispose() leaves it. */
  home?: string;
  /** Seed opencode's plugin SDK into the global config dir, as if opencode had installed it (default true). */
  seedSdk?: boolean;
}

export async function createJob(options: JobOptions): Promise<Job> {
  const root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-job-"));
  const home = options.home ?? join(root, "home");
  const workspace = join(root, "workspace");
  const runnerTemp = join(root, "runner-temp");
  for (const dir of [home, workspace, runnerTemp]) await mkdir(dir, { recursive: true });
  // opencode installs its plugin SDK into each config dir it reads; seed the global one (not the plugin under test).
  if (options.seedSdk !== false) await seedOpencodeSdk(join(home, ".config", "opencode"));
  const env: NodeJS.ProcessEnv = {
    PATH: pathWithoutOpencode(),
    HOME: home,
    LANG: "C.UTF-8",
    npm_config_registry: options.registry.url,
    npm_config_cache: join(home, ".npm"),
    npm_config_userconfig: join(home, ".npmrc"),
    npm_config_update_notifier: "false",
    npm_config_fetch_retries: "0",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_SHARE: "1",
    ...options.env,
  };
  const cache = options.cache ?? cacheStub(join(root, "cache-store"));
  return {
    root,
    home,
    workspace,
    runnerTemp,
    env,
    packagesDir: join(home, ".cache", "opencode", "packages"),
    setupAction(inputs, stubs = {}) {
      return runCompositeAction(SETUP_ACTION, inputs, {
        env,
        workspace,
        runnerTemp,
        stubs: { "actions/setup-node": setupNodeStub().stub, "actions/cache": cache.stub, ...stubs },
      });
    },
    async resolveOnly(inputs) {
      const action = parse(await readFile(join(SETUP_ACTION, "action.yml"), "utf8")) as ActionDefinition;
      const steps = action.runs.steps.slice(0, action.runs.steps.findIndex((st) => st.id === "resolve") + 1);
      const defaults = Object.fromEntries(Object.entries(action.inputs ?? {}).map(([k, v]) => [k, v.default ?? ""]));
      return runSteps(steps, { ...defaults, ...inputs }, { env, workspace, runnerTemp, actionPath: SETUP_ACTION });
    },
    exec(command, args, execOptions = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(command, args, {
          cwd: execOptions.cwd ?? workspace,
          env: { ...env, ...execOptions.env, PATH: [...(execOptions.path ?? []).reverse(), env.PATH].join(delimiter) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), execOptions.timeoutMs ?? 60_000);
        child.on("error", reject);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    },
    async dispose() {
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The version of the plugin installed in one of opencode's package directories. */
export async function installedVersion(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, "node_modules", "opencode-ci-auth", "package.json"), "utf8")) as { version: string }).version;
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}
