/**
 * Figure 3: the time to import the plugin entry (dist/index.js) in a fresh Node process, which opencode pays once
 * per run. Each sample is a new `node` whose script reads performance.now() around one dynamic import, so process
 * start-up is excluded. An empty module is imported the same way, alternating with the plugin, and the figure is
 * reported as a ratio to it as well as in ms.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PLUGIN_ENTRY_URL } from "./built-package.js";
import { median } from "./stats.js";

const run = promisify(execFile);

export const EMPTY_MODULE_URL = new URL("./fixtures/empty.mjs", import.meta.url);

const SCRIPT = "const t = performance.now(); await import(process.argv[1]); process.stdout.write(String(performance.now() - t));";

export interface ImportTimeResult {
  runs: number;
  pluginMs: number;
  emptyMs: number;
  /** pluginMs / emptyMs */
  ratioToEmpty: number;
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

async function importOnce(url: URL): Promise<number> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", SCRIPT, url.href], { env: childEnv(), timeout: 20_000 });
  const ms = Number(stdout);
  if (!Number.isFinite(ms)) throw new Error(`unexpected output from the import probe for ${url.href}`);
  return ms;
}

export async function measureImportTime(runs: number): Promise<ImportTimeResult> {
  // One untimed pair first, so both start from a warm file-system cache.
  await importOnce(EMPTY_MODULE_URL);
  await importOnce(PLUGIN_ENTRY_URL);
  const pluginSamplesMs: number[] = [];
  const emptySamplesMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    emptySamplesMs.push(await importOnce(EMPTY_MODULE_URL));
    pluginSamplesMs.push(await importOnce(PLUGIN_ENTRY_URL));
  }
  const pluginMs = median(pluginSamplesMs);
  const emptyMs = median(emptySamplesMs);
  return { runs, pluginMs, emptyMs, ratioToEmpty: pluginMs / emptyMs, pluginSamplesMs, emptySamplesMs };
}
