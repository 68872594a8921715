/**
 * Figure 3: the time to import the plugin entry (dist/index.js) in a fresh Node process, which opencode pays once
 * per run. Each sample is a new `node` whose script reads performance.now() around one dynamic import, so process
 * start-up is excluded. An empty module is imported the same way, alternating with the plugin, and the figure is
 * reported as a ratio to it as well as in ms. The check is the goal (issue 13): at most 50 ms, a ceiling in ms
 * because that is what opencode's start pays; the ratio is printed next to it to tell a slow machine from a slow plugin.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PLUGIN_ENTRY_URL } from "./built-package.js";
import { median } from "./stats.js";

const run = promisify(execFile);

export const EMPTY_MODULE_URL = new URL("./fixtures/empty.mjs", import.meta.url);

// Wall time, and the process's CPU time over the same span (all its threads): on a busy machine the wall time grows
// with the wait for a core, the CPU time much less, so it shows what the import costs on an idle one.
const SCRIPT =
  "const c = process.cpuUsage(); const t = performance.now(); await import(process.argv[1]); const w = performance.now() - t; " +
  "const u = process.cpuUsage(c); process.stdout.write(`${w} ${(u.user + u.system) / 1000}`);";

/** The most the import may take, median, in ms. */
export const IMPORT_TARGET_MS = 50;

export interface ImportTimeResult {
  runs: number;
  targetMs: number;
  pass: boolean;
  pluginMs: number;
  emptyMs: number;
  /** pluginMs / emptyMs */
  ratioToEmpty: number;
  /** CPU time (user + system, all threads) of the plugin's import, median. */
  pluginCpuMs: number;
  emptyCpuMs: number;
  pluginSamplesMs: number[];
  emptySamplesMs: number[];
}

/** A plain node: no tsx loader, no NODE_OPTIONS, no CI credentials. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.ACTIONS_ID_TOKEN_REQUEST_URL;
  delete env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  return env;
}

async function importOnce(url: URL): Promise<{ wallMs: number; cpuMs: number }> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", SCRIPT, url.href], { env: childEnv(), timeout: 20_000 });
  const [wallMs, cpuMs] = stdout.split(" ").map(Number);
  if (!Number.isFinite(wallMs) || !Number.isFinite(cpuMs)) throw new Error(`unexpected output from the import probe for ${url.href}`);
  return { wallMs: wallMs!, cpuMs: cpuMs! };
}

export async function measureImportTime(runs: number): Promise<ImportTimeResult> {
  // One untimed pair first, so both start from a warm file-system cache.
  await importOnce(EMPTY_MODULE_URL);
  await importOnce(PLUGIN_ENTRY_URL);
  const plugin: Array<{ wallMs: number; cpuMs: number }> = [];
  const empty: Array<{ wallMs: number; cpuMs: number }> = [];
  for (let i = 0; i < runs; i++) {
    empty.push(await importOnce(EMPTY_MODULE_URL));
    plugin.push(await importOnce(PLUGIN_ENTRY_URL));
  }
  const pluginSamplesMs = plugin.map((s) => s.wallMs);
  const emptySamplesMs = empty.map((s) => s.wallMs);
  const pluginMs = median(pluginSamplesMs);
  const emptyMs = median(emptySamplesMs);
  return {
    runs,
    targetMs: IMPORT_TARGET_MS,
    pass: pluginMs <= IMPORT_TARGET_MS,
    pluginMs,
    emptyMs,
    ratioToEmpty: pluginMs / emptyMs,
    pluginCpuMs: median(plugin.map((s) => s.cpuMs)),
    emptyCpuMs: median(empty.map((s) => s.cpuMs)),
    pluginSamplesMs,
    emptySamplesMs,
  };
}
