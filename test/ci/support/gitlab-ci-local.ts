/**
 * Runs GitLab CI jobs on this machine with gitlab-ci-local (npm `gitlab-ci-local`), shell executor, no Docker.
 *
 * What it takes here, measured with 4.75.1:
 * - Node 22's Set methods: on Node 20 it is started with set-methods.mjs preloaded.
 * - `rsync` on PATH: before any job it copies the tracked files to `.gitlab-ci-local/builds/.docker`, and it copies
 *   artifacts with rsync, even for the shell executor.
 * - A git repository. `include: component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA` resolves to
 *   `templates/<name>.yml` of the working tree when the project path matches the `origin` remote and the ref is HEAD's
 *   SHA (GitLab's own way to test a component in its project), so nothing is fetched.
 * - `--force-shell-executor`: a job with an `image` runs in Docker otherwise.
 * The job's shell inherits gitlab-ci-local's environment; `--variables-file` adds CI/CD variables without putting
 * their values on a command line. Job output goes to stdout and to `.gitlab-ci-local/output/<job>.log`; artifacts
 * to `.gitlab-ci-local/artifacts/<job>/`. `id_tokens` is validated against GitLab's schema but no token is minted.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { parse } from "yaml";

import { REPO_ROOT } from "../../support/opencode-cli.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export const TEMPLATE = join(REPO_ROOT, "templates", "opencode-run.yml");
/** The component address that resolves to this working tree's `templates/opencode-run.yml`. */
export const LOCAL_COMPONENT = "$CI_SERVER_FQDN/$CI_PROJECT_PATH/opencode-run@$CI_COMMIT_SHA";
/** The `origin` of the scratch projects; never contacted. */
export const ORIGIN = "https://gitlab.example.com/acme/app.git";

const GITLAB_CI_LOCAL = join(dirname(createRequire(import.meta.url).resolve("gitlab-ci-local/package.json")), "dist", "index.js");

export interface GitlabCiLocalResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Why gitlab-ci-local cannot run jobs here, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
  const rsync = spawnSync("rsync", ["--version"], { stdio: "ignore" });
  if (rsync.error || rsync.status !== 0) return "gitlab-ci-local needs rsync on PATH to run a job (apt-get install rsync)";
  return undefined;
}

/** `gitlab-ci-local <args>` in `cwd`, with exactly `env` (no inherited variables), killed after `timeoutMs`. */
export function gitlabCiLocal(cwd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<GitlabCiLocalResult> {
  const preload = typeof (Set.prototype as { union?: unknown }).union === "function" ? [] : ["--import", join(here, "set-methods.mjs")];
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [...preload, GITLAB_CI_LOCAL, "--no-color", ...args], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface ComponentProject {
  root: string;
  /** The git work tree holding `.gitlab-ci.yml` and `templates/opencode-run.yml`. */
  dir: string;
  /** `.gitlab-ci-local/output/<job>.log`. */
  jobLog(job: string): Promise<string>;
  /** A file from `.gitlab-ci-local/artifacts/<job>/`. */
  artifact(job: string, path: string): Promise<string>;
  dispose(): Promise<void>;
}

/**
 * A scratch GitLab project: this repository's component under `templates/`, `pipeline` as `.gitlab-ci.yml`, and
 * `files` (path → content), committed, with an `origin` remote so the component address resolves locally.
 */
export async function createComponentProject(pipeline: string, files: Record<string, string> = {}): Promise<ComponentProject> {
  const root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-gitlab-"));
  const dir = join(root, "project");
  await mkdir(join(dir, "templates"), { recursive: true });
  await copyFile(TEMPLATE, join(dir, "templates", "opencode-run.yml"));
  await writeFile(join(dir, ".gitlab-ci.yml"), pipeline);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "-c", "commit.gpgsign=false", ...args], { cwd: dir });
  await git("init", "--quiet", "--initial-branch=main");
  await git("remote", "add", "origin", ORIGIN);
  await git("add", "--all");
  await git("commit", "--quiet", "--message", "pipeline under test");
  // origin/HEAD, so gitlab-ci-local finds the default branch without asking the (fake) remote.
  await git("update-ref", "refs/remotes/origin/main", "HEAD");
  await git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main");
  const state = join(dir, ".gitlab-ci-local");
  return {
    root,
    dir,
    jobLog: (job) => readFile(join(state, "output", `${job}.log`), "utf8"),
    artifact: (job, path) => readFile(join(state, "artifacts", job, path), "utf8"),
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}

/** A `.gitlab-ci.yml` that includes the local component with `inputs` (JSON is valid YAML). */
export function pipelineWith(inputs: Record<string, string | boolean>): string {
  return `include:\n  - component: ${LOCAL_COMPONENT}\n    inputs: ${JSON.stringify(inputs)}\n`;
}

export interface Preview extends GitlabCiLocalResult {
  /** stdout and stderr together, for messages. */
  output: string;
  /** The expanded configuration (`--preview`), when gitlab-ci-local accepted it. */
  expanded: Record<string, unknown> | undefined;
}

/**
 * `gitlab-ci-local --preview` of `pipeline` in a scratch project holding this repository's component: the
 * configuration with includes, inputs and `extends` expanded, validated against GitLab's CI schema, or the reason
 * it is invalid. No job runs.
 */
export async function preview(pipeline: string): Promise<Preview> {
  const project = await createComponentProject(pipeline);
  try {
    const result = await gitlabCiLocal(project.dir, ["--preview"], {
      PATH: process.env.PATH,
      HOME: join(project.root, "home"),
      LANG: "C.UTF-8",
    });
    const start = result.stdout.indexOf("---");
    const expanded = result.code === 0 && start !== -1 ? (parse(result.stdout.slice(start)) as Record<string, unknown>) : undefined;
    return { ...result, output: `${result.stdout}\n${result.stderr}`, expanded };
  } finally {
    await project.dispose();
  }
}
