/**
 * Runs the `opencode-ci-auth` command of the packed package (the `bin` link npm made when it installed the tarball,
 * test/support/packed-package.ts) as a child process, for true exit codes and true
 * stdout/stderr, in a project of its own: a temp dir with a `.git` (bounding opencode's upward config search), a
 * fake HOME and XDG_CONFIG_HOME, and an environment built from scratch (only PATH is inherited), so nothing of
 * the developer's or the CI runner's own opencode config or CI variables leaks in. Nothing here prints output.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import { REPO_ROOT } from "./opencode-cli.js";
import { packedPackage } from "./packed-package.js";

/** The command as npm installed it: `node_modules/.bin/opencode-ci-auth` of a consumer of the packed tarball. */
export const cliPath = (): string => packedPackage().bin;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliProject {
  root: string;
  /** The project directory (cwd of every run): holds `.git` and `opencode.json`. */
  dir: string;
  home: string;
  /** HOME, XDG_CONFIG_HOME, PATH and a UTF-8 locale: the base of every run's environment. */
  env: NodeJS.ProcessEnv;
  /** Writes `opencode.json` (or `name`) in the project directory; returns its path. */
  writeConfig(config: unknown, name?: string): Promise<string>;
  /** A path inside the project's temp root (not in the project directory). */
  path(name: string): string;
  /** Runs the CLI in the project directory with `env` over the base environment. */
  run(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  dispose(): Promise<void>;
}

/** Runs the packed command with `args`; kills it after `timeoutMs`. */
export function runCli(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(), ...args], { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    // A deadline for a hung command, sized for a loaded 2-core runner (a 2 s run took 26 s there).
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function createCliProject(): Promise<CliProject> {
  const root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-cli-"));
  const dir = join(root, "project");
  const home = join(root, "home");
  await mkdir(join(dir, ".git"), { recursive: true });
  await mkdir(home, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: "C.UTF-8", HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
  return {
    root,
    dir,
    home,
    env,
    async writeConfig(config, name = "opencode.json") {
      const file = join(dir, name);
      await writeFile(file, typeof config === "string" ? config : JSON.stringify(config, null, 2));
      return file;
    },
    path: (name) => join(root, name),
    run: (args, extra = {}) => runCli(args, { cwd: dir, env: { ...env, ...extra } }),
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}

async function newestMtime(dir: string): Promise<{ path: string; mtimeMs: number }> {
  let newest = { path: dir, mtimeMs: 0 };
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory() ? await newestMtime(path) : { path, mtimeMs: (await stat(path)).mtimeMs };
    if (candidate.mtimeMs > newest.mtimeMs) newest = candidate;
  }
  return newest;
}

/**
 * Fails fast, with the fix, when dist/ is missing or older than src/: these tests run the build, and a stale one
 * would test yesterday's code. `npm test` builds first; locally run `npm run build`.
 */
export async function assertBuilt(): Promise<void> {
  const built = await stat(join(REPO_ROOT, "dist", "cli", "main.js")).catch(() => undefined);
  const source = await newestMtime(join(REPO_ROOT, "src"));
  if (!built || source.mtimeMs > (await newestMtime(join(REPO_ROOT, "dist"))).mtimeMs) {
    throw new Error(
      `dist/ is ${built ? `older than ${relative(REPO_ROOT, source.path)}` : "missing"}: run \`npm run build\` (npm test builds first)`,
    );
  }
}

/** Splits a Markdown table row into its cells as GitHub does: `\x` escapes x, and an unescaped `|` separates cells. */
export function markdownCells(row: string): string[] {
  const cells: string[] = [];
  let current = "";
  for (let i = 0; i < row.length; i++) {
    const ch = row[i] as string;
    if (ch === "\\" && i + 1 < row.length) {
      current += ch + (row[i + 1] as string);
      i++;
    } else if (ch === "|") {
      cells.push(current.trim());
      current = "";
    } else {
      current += ch;
    }
  }
  cells.push(current.trim());
  // A row starts and ends with a pipe: drop the empty outer cells.
  return cells.slice(row.trimStart().startsWith("|") ? 1 : 0, row.trimEnd().endsWith("|") ? -1 : undefined);
}
