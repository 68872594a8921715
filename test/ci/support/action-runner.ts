/**
 * Runs the steps of a composite action (or of a workflow job) the way the GitHub runner does, on this machine:
 *
 * - `${{ }}` in `if:`, `env:`, `with:`, `run:` and output values is evaluated by @actions/expressions, GitHub's own
 *   evaluator, against the `inputs`, `steps`, `runner`, `github`, `env` and `matrix` contexts;
 * - a `run:` step with `shell: bash` is written to a file and run as `bash --noprofile --norc -eo pipefail <file>`
 *   (the runner's command for that shell) in the workspace, with the runner's variables (GITHUB_ACTION_PATH,
 *   RUNNER_TEMP, RUNNER_OS, …) and fresh GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files;
 *   what a step writes there becomes its outputs, the later steps' environment and PATH, and the job summary;
 * - the runner hands a composite action's inputs to its steps only through `${{ inputs.* }}` (it sets no INPUT_*
 *   variables for them), and so does this harness: what a script sees is what the action maps through `env:`;
 * - a `uses:` step runs a stub named in `stubs` (by `owner/repo[/path]`, without the ref); a step with no stub fails
 *   the run, so nothing reaches the network unnoticed. Stubs stand in for what only works on GitHub (setup-node's
 *   download, the cache service, artifact storage) and may register a post step, run after the last step as the
 *   runner runs `post:` when the job succeeded.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";

import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";
import { parse } from "yaml";

export type Strings = Record<string, string>;

export interface StubCall {
  with: Strings;
  env: NodeJS.ProcessEnv;
  step: StepDefinition;
}

export interface StubResult {
  outputs?: Strings;
  /** Runs after the last step, in reverse order of registration, when no step failed. */
  post?: () => Promise<void> | void;
  /** A stub may fail its step, as the real action would. */
  failed?: string;
  /** What the action wrote to GITHUB_PATH / GITHUB_ENV (a nested composite action does). */
  path?: string[];
  env?: Strings;
  /** Its log, kept in the step's record. */
  log?: string;
}

export type Stub = (call: StubCall) => Promise<StubResult> | StubResult;

export interface StepDefinition {
  id?: string;
  name?: string;
  if?: string | boolean;
  uses?: string;
  run?: string;
  shell?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  "working-directory"?: string;
  "continue-on-error"?: boolean;
}

export interface StepRecord {
  id?: string;
  name: string;
  outcome: "success" | "failure" | "skipped";
  outputs: Strings;
  stdout: string;
  stderr: string;
  /** The evaluated `env:` of a run step, or `with:` of a uses step. */
  env: Strings;
  with: Strings;
  durationMs: number;
}

export interface RunResult {
  ok: boolean;
  steps: StepRecord[];
  /** Directories appended to GITHUB_PATH, first written first. */
  path: string[];
  /** Variables written to GITHUB_ENV. */
  env: Strings;
  /** The job summary: every step's GITHUB_STEP_SUMMARY, in order. */
  summary: string;
  /** `::error` / `::warning` annotations the steps printed (message only, unescaped). */
  errors: string[];
  warnings: string[];
  /** All steps' stdout and stderr, for assertion messages. */
  log: string;
  step(id: string): StepRecord;
}

export interface RunnerOptions {
  /** The job's environment before the first step: PATH, HOME, … (nothing of the test process leaks in). */
  env: NodeJS.ProcessEnv;
  workspace: string;
  runnerTemp: string;
  stubs?: Record<string, Stub>;
  /** Extra contexts (`github`, `matrix`, …) merged over the defaults. */
  contexts?: Record<string, unknown>;
  /** GITHUB_ACTION_PATH for `run:` steps (the composite action's directory). */
  actionPath?: string;
}

export const RUNNER_OS = process.platform === "win32" ? "Windows" : process.platform === "darwin" ? "macOS" : "Linux";
export const RUNNER_ARCH = process.arch === "arm64" ? "ARM64" : "X64";

const CONTEXT_NAMES = ["inputs", "steps", "runner", "github", "env", "matrix", "secrets", "job", "jobs", "strategy", "needs", "vars"];

/** Evaluates one expression (the text inside `${{ }}`). */
export function evaluate(expression: string, contexts: Record<string, unknown>): data.ExpressionData {
  const lexed = new Lexer(expression).lex();
  const parsed = new Parser(lexed.tokens, CONTEXT_NAMES, []).parse();
  const dictionary = JSON.parse(JSON.stringify(contexts), data.reviver) as data.Dictionary;
  return new Evaluator(parsed, dictionary).evaluate();
}

/** Replaces every `${{ expr }}` in `template` with its string value, as the runner does for scalars. */
export function interpolate(template: string, contexts: Record<string, unknown>): string {
  return template.replace(/\$\{\{([\s\S]*?)\}\}/g, (_, expression: string) => evaluate(expression.trim(), contexts).coerceString());
}

/** An `if:` condition: a bare expression or one wrapped in `${{ }}`; absent means `success()`. */
function condition(value: string | boolean | undefined, contexts: Record<string, unknown>, failed: boolean): boolean {
  if (value === undefined) return !failed;
  if (typeof value === "boolean") return value && !failed;
  const text = value
    .trim()
    .replace(/^\$\{\{([\s\S]*)\}\}$/, "$1")
    .trim();
  if (/\balways\(\)/.test(text)) return truthy(evaluate(text.replace(/\balways\(\)/g, "true"), contexts));
  if (/\bfailure\(\)/.test(text)) return failed && truthy(evaluate(text.replace(/\bfailure\(\)/g, "true"), contexts));
  const withoutStatus = text.replace(/\bsuccess\(\)/g, "true").replace(/!\s*cancelled\(\)/g, "true");
  if (failed && !/!\s*cancelled\(\)/.test(text)) return false;
  return truthy(evaluate(withoutStatus, contexts));
}

/** Parses a GITHUB_OUTPUT / GITHUB_ENV file: `name=value` lines and `name<<DELIMITER` … `DELIMITER` blocks. */
export function parseFileCommands(text: string): Strings {
  const result: Strings = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line === "") continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name = "", marker = ""] = heredoc;
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== marker; i++) body.push(lines[i] ?? "");
      if (i >= lines.length) throw new Error(`unterminated ${name}<<${marker} in a file command`);
      result[name] = body.join("\n");
      continue;
    }
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`malformed file command line: ${JSON.stringify(line)}`);
    result[line.slice(0, at)] = line.slice(at + 1);
  }
  return result;
}

function unescapeData(value: string): string {
  return value.replaceAll("%0A", "\n").replaceAll("%0D", "\r").replaceAll("%25", "%");
}

function annotations(stdout: string, kind: "error" | "warning"): string[] {
  return [...stdout.matchAll(new RegExp(`^::${kind}(?: [^:]*)?::(.*)$`, "gm"))].map((m) => unescapeData(m[1] ?? ""));
}

function exec(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function stringMap(values: Record<string, unknown> | undefined, contexts: Record<string, unknown>): Strings {
  const result: Strings = {};
  for (const [key, value] of Object.entries(values ?? {})) result[key] = interpolate(String(value), contexts);
  return result;
}

/** `owner/repo[/path]` of a `uses:` value, without its `@ref`; `./path` as written. */
export function actionName(uses: string): string {
  return uses.startsWith("./") ? uses : uses.replace(/@[^@]*$/, "");
}

/** Runs `steps` in order; `inputs` is the `inputs` context (defaults already applied). */
export async function runSteps(steps: StepDefinition[], inputs: Strings, options: RunnerOptions): Promise<RunResult> {
  const records: StepRecord[] = [];
  const stepsContext: Record<string, { outputs: Strings; outcome: string; conclusion: string }> = {};
  const posts: Array<() => Promise<void> | void> = [];
  const addedPath: string[] = [];
  const addedEnv: Strings = {};
  let summary = "";
  let failed = false;
  const runnerContext = { os: RUNNER_OS, arch: RUNNER_ARCH, temp: options.runnerTemp, tool_cache: join(options.runnerTemp, "toolcache") };
  const githubContext = {
    workspace: options.workspace,
    action_path: options.actionPath ?? "",
    run_id: "4242",
    run_attempt: "1",
    repository: "acme/app",
    event_name: "workflow_call",
    ...(options.contexts?.github as Record<string, unknown> | undefined),
  };

  for (const [index, step] of steps.entries()) {
    const contexts = {
      inputs,
      steps: stepsContext,
      runner: runnerContext,
      github: githubContext,
      env: { ...addedEnv },
      matrix: {},
      ...options.contexts,
    };
    contexts.github = githubContext;
    const name = step.name ?? step.id ?? step.uses ?? `step ${index + 1}`;
    const record: StepRecord = {
      id: step.id,
      name,
      outcome: "skipped",
      outputs: {},
      stdout: "",
      stderr: "",
      env: {},
      with: {},
      durationMs: 0,
    };
    const started = performance.now();
    records.push(record);
    if (!condition(step.if, contexts, failed)) {
      if (step.id) stepsContext[step.id] = { outputs: {}, outcome: "skipped", conclusion: "skipped" };
      continue;
    }
    const stepEnv = stringMap(step.env, contexts);
    record.env = stepEnv;
    const files = join(options.runnerTemp, "_runner_file_commands", `${index}-${randomUUID()}`);
    await mkdir(files, { recursive: true });
    const fileVars = {
      GITHUB_OUTPUT: join(files, "output"),
      GITHUB_ENV: join(files, "env"),
      GITHUB_PATH: join(files, "path"),
      GITHUB_STEP_SUMMARY: join(files, "summary"),
    };
    for (const file of Object.values(fileVars)) await writeFile(file, "");
    const env: NodeJS.ProcessEnv = {
      ...options.env,
      ...addedEnv,
      PATH: [...[...addedPath].reverse(), options.env.PATH ?? ""].join(delimiter),
      CI: "true",
      GITHUB_ACTIONS: "true",
      GITHUB_WORKSPACE: options.workspace,
      GITHUB_ACTION_PATH: options.actionPath ?? "",
      GITHUB_RUN_ID: githubContext.run_id,
      GITHUB_RUN_ATTEMPT: githubContext.run_attempt,
      GITHUB_REPOSITORY: githubContext.repository,
      RUNNER_OS: runnerContext.os,
      RUNNER_ARCH: runnerContext.arch,
      RUNNER_TEMP: runnerContext.temp,
      RUNNER_TOOL_CACHE: runnerContext.tool_cache,
      ...fileVars,
      ...stepEnv,
    };

    let ok: boolean;
    if (step.uses !== undefined) {
      const stub = options.stubs?.[actionName(step.uses)];
      if (!stub) throw new Error(`no stub for "${step.uses}": the harness runs no action it does not know`);
      record.with = stringMap(step.with, contexts);
      const result = await stub({ with: record.with, env, step });
      record.outputs = result.outputs ?? {};
      if (result.post) posts.push(result.post);
      addedPath.push(...(result.path ?? []));
      Object.assign(addedEnv, result.env ?? {});
      ok = result.failed === undefined;
      record.stdout = `${result.log ?? ""}${result.failed ?? ""}`;
    } else if (step.run !== undefined) {
      if (step.shell !== "bash" && step.shell !== undefined) throw new Error(`the harness runs shell: bash only, not ${step.shell}`);
      const script = join(files, "script.sh");
      await writeFile(script, interpolate(step.run, contexts));
      const cwd = step["working-directory"] ? join(options.workspace, interpolate(step["working-directory"], contexts)) : options.workspace;
      const result = await exec("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], { cwd, env });
      record.stdout = result.stdout;
      record.stderr = result.stderr;
      ok = result.code === 0;
      record.outputs = parseFileCommands(await readFile(fileVars.GITHUB_OUTPUT, "utf8"));
      Object.assign(addedEnv, parseFileCommands(await readFile(fileVars.GITHUB_ENV, "utf8")));
      for (const line of (await readFile(fileVars.GITHUB_PATH, "utf8")).split(/\r?\n/)) if (line.trim()) addedPath.push(line.trim());
      summary += await readFile(fileVars.GITHUB_STEP_SUMMARY, "utf8");
    } else {
      throw new Error(`step "${name}" has neither run nor uses`);
    }
    record.outcome = ok ? "success" : "failure";
    record.durationMs = Math.round(performance.now() - started);
    if (step.id)
      stepsContext[step.id] = {
        outputs: record.outputs,
        outcome: record.outcome,
        conclusion: ok || step["continue-on-error"] ? "success" : "failure",
      };
    if (!ok && !step["continue-on-error"]) failed = true;
  }
  if (!failed) for (const post of posts.reverse()) await post();

  const log = records.map((r) => `--- ${r.name} (${r.outcome}, ${r.durationMs} ms)\n${r.stdout}${r.stderr}`).join("\n");
  return {
    ok: !failed,
    steps: records,
    path: addedPath,
    env: addedEnv,
    summary,
    errors: records.flatMap((r) => annotations(r.stdout, "error")),
    warnings: records.flatMap((r) => annotations(r.stdout, "warning")),
    log,
    step(id) {
      const found = records.find((r) => r.id === id);
      if (!found) throw new Error(`no step with id ${id}`);
      return found;
    },
  };
}

export interface ActionDefinition {
  name: string;
  inputs?: Record<string, { description?: string; required?: boolean; default?: string }>;
  outputs?: Record<string, { description?: string; value: string }>;
  runs: { using: string; steps: StepDefinition[] };
}

export interface ActionRun extends RunResult {
  outputs: Strings;
}

/** Runs a composite action from its directory, with `inputs` as a workflow's `with:` would give them. */
export async function runCompositeAction(
  actionDir: string,
  inputs: Strings,
  options: Omit<RunnerOptions, "actionPath">,
): Promise<ActionRun> {
  const action = parse(await readFile(join(actionDir, "action.yml"), "utf8")) as ActionDefinition;
  if (action.runs.using !== "composite") throw new Error(`${actionDir} is not a composite action`);
  const declared = action.inputs ?? {};
  for (const name of Object.keys(inputs))
    if (!(name in declared)) throw new Error(`unexpected input "${name}" (the runner would warn and ignore it)`);
  const resolved: Strings = {};
  for (const [name, input] of Object.entries(declared)) {
    if (name in inputs) resolved[name] = inputs[name] ?? "";
    else if (input.required && input.default === undefined) throw new Error(`input "${name}" is required`);
    else resolved[name] = input.default ?? "";
  }
  const result = await runSteps(action.runs.steps, resolved, { ...options, actionPath: actionDir });
  const stepsContext = Object.fromEntries(result.steps.filter((s) => s.id).map((s) => [s.id, { outputs: s.outputs, outcome: s.outcome }]));
  const outputs: Strings = {};
  for (const [name, output] of Object.entries(action.outputs ?? {}))
    outputs[name] = interpolate(output.value, { steps: stepsContext, inputs: resolved });
  return { ...result, outputs };
}
