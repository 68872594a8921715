/**
 * Fake CI command-line tools (`circleci`, `buildkite-agent`, any program) for the subject-token sources that run
 * one: small Node scripts with a shebang, written to a temp directory that a test puts first on PATH. Each run
 * appends its argv (and a few environment variables) to `<name>.calls.jsonl` and follows `<name>.plan.json`:
 * which token to print for which audience (read from `--audience` or from the `aud` of `--claims`), what to print
 * on stderr, the exit code, a delay. Tokens come from the test (CiIssuer.mint); nothing here prints one except
 * the fake's own stdout, which is what the source reads.
 */
import { readFile, writeFile, chmod } from "node:fs/promises";
import { delimiter, join } from "node:path";

export interface FakeCliPlan {
  /** The token to print, by audience; `*` for any audience, `(default)` when none is asked for. */
  tokens?: Record<string, string>;
  /** Printed as is instead of a token (e.g. several lines, or nothing). */
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Wait this long before answering. */
  sleepMs?: number;
  /** Start a grandchild that keeps stdout and stderr open this long after the fake itself exits. */
  grandchildMs?: number;
  /** Answer only once stdin reaches end-of-file (a program that reads its input first). */
  waitForStdin?: boolean;
}

export interface FakeCliCall {
  argv: string[];
  env: Record<string, string | undefined>;
}

export interface FakeCli {
  name: string;
  path: string;
  plan(plan: FakeCliPlan): Promise<void>;
  calls(): Promise<FakeCliCall[]>;
}

/** Environment variables the fake records (never tokens). */
const RECORDED_ENV = ["CIRCLECI", "BUILDKITE_JOB_ID", "MARKER"];

const script = (name: string, dir: string) => `#!${process.execPath}
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const dir = ${JSON.stringify(dir)};
const name = ${JSON.stringify(name)};
const argv = process.argv.slice(2);
let plan = {};
try { plan = JSON.parse(fs.readFileSync(path.join(dir, name + '.plan.json'), 'utf8')); } catch {}
const env = {};
for (const key of ${JSON.stringify(RECORDED_ENV)}) env[key] = process.env[key];
const arg = (flag) => { const i = argv.indexOf(flag); return i >= 0 ? argv[i + 1] : undefined; };
let aud = arg('--audience');
const claims = arg('--claims');
if (aud === undefined && claims !== undefined) { try { aud = JSON.parse(claims).aud; } catch { aud = '(invalid --claims)'; } }
const answer = () => {
  fs.appendFileSync(path.join(dir, name + '.calls.jsonl'), JSON.stringify({ argv, env }) + '\\n');
  if (plan.grandchildMs) spawn(process.execPath, ['-e', 'setTimeout(() => {}, ' + plan.grandchildMs + ')'], { stdio: ['ignore', 'inherit', 'inherit'] }).unref();
  const tokens = plan.tokens || {};
  const out = plan.stdout !== undefined ? plan.stdout : (tokens[aud === undefined ? '(default)' : aud] ?? tokens['*'] ?? '') + '\\n';
  if (plan.stderr) process.stderr.write(plan.stderr);
  process.stdout.write(out, () => process.exit(plan.exitCode ?? 0));
};
if (plan.waitForStdin) {
  process.stdin.on('end', answer);
  process.stdin.resume();
} else {
  setTimeout(answer, plan.sleepMs ?? 0);
}
`;

/** Writes an executable fake `name` into `dir`. */
export async function writeFakeCli(dir: string, name: string): Promise<FakeCli> {
  const path = join(dir, name);
  await writeFile(path, script(name, dir));
  await chmod(path, 0o755);
  return {
    name,
    path,
    plan: (plan) => writeFile(join(dir, `${name}.plan.json`), JSON.stringify(plan)),
    async calls() {
      const text = await readFile(join(dir, `${name}.calls.jsonl`), "utf8").catch(() => "");
      return text
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as FakeCliCall);
    },
  };
}

/** `PATH` with `dir` first, for the environment of a source under test. */
export function pathWith(dir: string): string {
  return [dir, process.env.PATH ?? ""].join(delimiter);
}
