/**
 * Figure 5: whole `opencode run` invocations of the real CLI (node_modules/.bin/opencode) against the loopback world,
 * wall time from spawn to exit. Variants, alternating round by round (the order rotates each round):
 *   static key without a plugin, a no-op plugin, this plugin (dist/index.js, by path), each
 *   cold     a fresh HOME and XDG dirs, as on a fresh CI runner (opencode installs @opencode-ai/plugin itself), or
 *   prepared the same, with opencode's config dir copied from one made by `opencode-ci-auth prepare` before timing.
 * Every run has the same environment (OPENCODE_DISABLE_MODELS_FETCH=1, the CI token variables, the machine's npm
 * settings) and the same provider and model; only `plugin` and the provider's key differ. The check: this plugin,
 * prepared, at most 1.05× the static key without a plugin (cold, which is what a job without the plugin pays),
 * fastest run to fastest run, as figure 3: on a shared 2-core VM the same run takes one of two durations about 1.4×
 * apart, and with 5 rounds the medians of two variants can land on different ones. Medians are printed beside it.
 */
import { spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PROVIDER_ID, githubActionsEnv, issueOAuth2Block } from "../test/support/issue-config.js";
import { REPO_ROOT } from "../test/support/opencode-cli.js";
import type { World } from "../test/support/world.js";
import { median } from "./stats.js";

export const STATIC_KEY = "bench-static-key";
const OPENCODE = join(REPO_ROOT, "node_modules", ".bin", "opencode");
const CLI = join(REPO_ROOT, "dist", "cli", "main.js");
const MODEL = "mock-model";

type Plugin = "none" | "noop" | "this";
export interface Variant {
  id: string;
  label: string;
  plugin: Plugin;
  prepared: boolean;
}

export const VARIANTS: Variant[] = [
  { id: "static-cold", label: "static key, no plugin", plugin: "none", prepared: false },
  { id: "noop-cold", label: "no-op plugin", plugin: "noop", prepared: false },
  { id: "this-cold", label: "this plugin", plugin: "this", prepared: false },
  { id: "static-prepared", label: "static key, no plugin, prepared", plugin: "none", prepared: true },
  { id: "noop-prepared", label: "no-op plugin, prepared", plugin: "noop", prepared: true },
  { id: "this-prepared", label: "this plugin, prepared", plugin: "this", prepared: true },
];
const BASELINE = "static-cold";
const CHECKED = "this-prepared";

export interface WholeRunResult {
  rounds: number;
  opencodeVersion: string;
  /**
   * Per variant: the samples in ms (round order); the fastest and its ratio to the baseline's fastest (the check's
   * figure); the median and its ratio to the baseline's median.
   */
  variants: Array<{
    id: string;
    label: string;
    samplesMs: number[];
    fastestMs: number;
    ratioToStaticKey: number;
    medianMs: number;
    medianRatioToStaticKey: number;
  }>;
  /** Time of the one `opencode-ci-auth prepare` that made the prepared config dir (not part of any sample). */
  prepareMs: number;
  targetRatio: number;
  pass: boolean;
}

/** The machine's npm settings (registry, CA file, proxy), which a fresh HOME would otherwise hide. */
function npmSettings(): NodeJS.ProcessEnv {
  const keep = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];
  return {
    npm_config_userconfig: process.env.npm_config_userconfig ?? join(homedir(), ".npmrc"),
    ...Object.fromEntries(keep.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : []))),
  };
}

function config(world: World, plugin: Plugin, noopPath: string) {
  const options: Record<string, unknown> = { baseURL: world.model.baseURL };
  if (plugin === "this") options.oauth2 = issueOAuth2Block(world);
  else options.apiKey = STATIC_KEY;
  return {
    $schema: "https://opencode.ai/config.json",
    plugin: plugin === "none" ? [] : [pathToFileURL(plugin === "noop" ? noopPath : join(REPO_ROOT, "dist", "index.js")).href],
    provider: { [PROVIDER_ID]: { name: "Miaou", options, models: { [MODEL]: { name: "Mock" } } } },
  };
}

interface Exit {
  code: number | null;
  output: string;
  ms: number;
}

function exec(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 240_000): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
  });
}

/** A fresh HOME and project for one run: XDG dirs inside it, a `.git` to bound opencode's upward search. */
async function freshRun(root: string, n: number): Promise<{ home: string; project: string; env: NodeJS.ProcessEnv }> {
  const home = join(root, `run-${n}`, "home");
  const project = join(root, `run-${n}`, "project");
  await mkdir(join(project, ".git"), { recursive: true });
  await mkdir(home, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: "C.UTF-8",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_STATE_HOME: join(home, ".local", "state"),
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_CI_AUTH_LOG_LEVEL: "silent",
    ...npmSettings(),
  };
  return { home, project, env };
}

export async function measureWholeRun(world: World, rounds: number, log: (line: string) => void): Promise<WholeRunResult> {
  const root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-bench-run-"));
  try {
    const noopPath = join(root, "noop-plugin.js");
    await writeFile(noopPath, "export default async () => ({});\n");
    const opencodeVersion = (
      JSON.parse(await readFile(join(REPO_ROOT, "node_modules", "opencode-ai", "package.json"), "utf8")) as { version: string }
    ).version;

    // The prepared config dir, made once by the command under test; each prepared run gets a copy.
    const template = join(root, "prepared-config");
    const prep = await freshRun(root, 0);
    const made = await exec(
      process.execPath,
      [CLI, "prepare", "--opencode-version", opencodeVersion, "--dir", template],
      prep.project,
      prep.env,
    );
    if (made.code !== 0) throw new Error(`bench: opencode-ci-auth prepare failed (exit ${made.code}):\n${made.output.slice(-2000)}`);

    let n = 1;
    const runOnce = async (variant: Variant): Promise<number> => {
      const run = await freshRun(root, n++);
      await writeFile(join(run.project, "opencode.json"), JSON.stringify(config(world, variant.plugin, noopPath), null, 2));
      if (variant.prepared) await cp(template, join(run.home, ".config", "opencode"), { recursive: true, verbatimSymlinks: true });
      const result = await exec(OPENCODE, ["run", "--model", `${PROVIDER_ID}/${MODEL}`, "Say hello"], run.project, {
        ...run.env,
        ...githubActionsEnv(world),
      });
      await rm(join(run.home, ".."), { recursive: true, force: true });
      if (result.code !== 0 || !result.output.includes("Hello from the mock model")) {
        throw new Error(`bench: opencode run (${variant.label}) failed (exit ${result.code}):\n${result.output.slice(-2000)}`);
      }
      return result.ms;
    };

    // One untimed run of each kind warms the file-system cache (the 180 MB binary, the plugin's modules).
    await runOnce(VARIANTS[0] as Variant);
    await runOnce(VARIANTS[5] as Variant);
    const samples = new Map<string, number[]>(VARIANTS.map((v) => [v.id, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round, so no variant always runs right after the same other one.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length] as Variant);
      for (const variant of order) samples.get(variant.id)?.push(await runOnce(variant));
      log(`bench: whole-run round ${round + 1}/${rounds} done`);
    }

    const base = samples.get(BASELINE) ?? [];
    const variants = VARIANTS.map((v) => {
      const s = samples.get(v.id) ?? [];
      return {
        id: v.id,
        label: v.label,
        samplesMs: s,
        fastestMs: Math.min(...s),
        ratioToStaticKey: Math.min(...s) / Math.min(...base),
        medianMs: median(s),
        medianRatioToStaticKey: median(s) / median(base),
      };
    });
    const targetRatio = 1.05;
    const checked = variants.find((v) => v.id === CHECKED);
    return {
      rounds,
      opencodeVersion,
      variants,
      prepareMs: made.ms,
      targetRatio,
      pass: (checked?.ratioToStaticKey ?? Infinity) <= targetRatio,
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
