/**
 * The package as users get it: the compiled plugin entry (dist/index.js) and library (dist/lib.js), loaded at run
 * time so that typechecking bench/ does not need a build. Types come from the sources they are compiled from.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as PluginEntry from "../src/index.js";
import type * as Lib from "../src/lib.js";

export const DIST_DIR = new URL("../dist/", import.meta.url);
export const PLUGIN_ENTRY_URL = new URL("index.js", DIST_DIR);
const LIB_URL = new URL("lib.js", DIST_DIR);

export type PluginEntryModule = typeof PluginEntry;
export type LibModule = typeof Lib;

function assertBuilt(url: URL): void {
  if (!existsSync(fileURLToPath(url)))
    throw new Error(`${fileURLToPath(url)} is missing: run \`npm run build\` first (npm run bench does).`);
}

export async function loadPluginEntry(): Promise<PluginEntryModule> {
  assertBuilt(PLUGIN_ENTRY_URL);
  return (await import(PLUGIN_ENTRY_URL.href)) as PluginEntryModule;
}

export async function loadLib(): Promise<LibModule> {
  assertBuilt(LIB_URL);
  return (await import(LIB_URL.href)) as LibModule;
}
