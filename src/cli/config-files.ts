/**
 * Finds and merges the opencode config the way opencode 1.18 does, so `doctor` and `token` see what
 * `opencode run` would see. Lowest precedence first:
 *   global ($XDG_CONFIG_HOME/opencode/{config.json,opencode.json,opencode.jsonc})
 *   < OPENCODE_CONFIG (a file)
 *   < project opencode.json(c), from the git root (or filesystem root) down to the cwd, nearer wins
 *   < .opencode/opencode.json(c) in those directories
 *   < OPENCODE_CONFIG_DIR/opencode.json(c)
 *   < OPENCODE_CONFIG_CONTENT (inline JSON)
 * `--config PATH` replaces the search with that one file.
 */
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse, printParseErrorCode, type ParseError } from "jsonc-parser";
import { substituteEnvReferences } from "../config/env-references.js";

export type ConfigOrigin =
  "--config" | "global" | "OPENCODE_CONFIG" | "project" | ".opencode" | "OPENCODE_CONFIG_DIR" | "OPENCODE_CONFIG_CONTENT";

export interface ConfigSource {
  origin: ConfigOrigin;
  /** The file, or `OPENCODE_CONFIG_CONTENT` for inline content. */
  path: string;
  /** Set when the file exists but cannot be read or parsed; it then contributes nothing. */
  error?: string;
}

export interface OpencodeConfig {
  provider?: Record<string, { options?: Record<string, unknown> } & Record<string, unknown>>;
  model?: string;
  small_model?: string;
  [key: string]: unknown;
}

export interface LoadedConfig {
  sources: ConfigSource[];
  config: OpencodeConfig;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Objects merge key by key; anything else (arrays included) is replaced, as opencode does. */
export function mergeConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isObject(current) && isObject(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

function parseJsonc(text: string): { value?: Record<string, unknown>; error?: string } {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0] as ParseError;
    const line = text.slice(0, first.offset).split("\n").length;
    return { error: `${printParseErrorCode(first.error)} at line ${line}` };
  }
  return isObject(value) ? { value } : { error: "not a JSON object" };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function readSource(
  origin: ConfigOrigin,
  path: string,
  env: NodeJS.ProcessEnv,
): Promise<{ source: ConfigSource; value?: Record<string, unknown> }> {
  try {
    // As opencode does: `{env:VAR}` in the file's text, once, before parsing.
    const parsed = parseJsonc(substituteEnvReferences(await readFile(path, "utf8"), env));
    return parsed.value
      ? { source: { origin, path }, value: parsed.value }
      : { source: { origin, path, error: parsed.error ?? "unreadable" } };
  } catch (err) {
    return { source: { origin, path, error: (err as NodeJS.ErrnoException).code ?? "unreadable" } };
  }
}

/** The directories from the git root (or filesystem root) down to `cwd`. */
async function projectDirs(cwd: string): Promise<string[]> {
  const dirs: string[] = [];
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    dirs.unshift(dir);
    if ((await stat(join(dir, ".git")).catch(() => undefined)) || dirname(dir) === dir) break;
  }
  return dirs;
}

async function candidates(cwd: string, env: NodeJS.ProcessEnv, home: string): Promise<Array<{ origin: ConfigOrigin; path: string }>> {
  const list: Array<{ origin: ConfigOrigin; path: string }> = [];
  const configHome = env.XDG_CONFIG_HOME || join(home, ".config");
  for (const name of ["config.json", "opencode.json", "opencode.jsonc"])
    list.push({ origin: "global", path: join(configHome, "opencode", name) });
  if (env.OPENCODE_CONFIG) list.push({ origin: "OPENCODE_CONFIG", path: resolve(cwd, env.OPENCODE_CONFIG) });
  const dirs = await projectDirs(cwd);
  for (const dir of dirs) for (const name of ["opencode.json", "opencode.jsonc"]) list.push({ origin: "project", path: join(dir, name) });
  for (const dir of dirs)
    for (const name of ["opencode.json", "opencode.jsonc"]) list.push({ origin: ".opencode", path: join(dir, ".opencode", name) });
  if (env.OPENCODE_CONFIG_DIR)
    for (const name of ["opencode.json", "opencode.jsonc"])
      list.push({ origin: "OPENCODE_CONFIG_DIR", path: join(resolve(cwd, env.OPENCODE_CONFIG_DIR), name) });
  return list;
}

/**
 * The directories opencode 1.18 installs `@opencode-ai/plugin` into before it loads plugins (its `ConfigPaths.directories`):
 * the global config dir, each `.opencode/` from `cwd` up to the git root (unless OPENCODE_DISABLE_PROJECT_CONFIG),
 * `~/.opencode/`, and OPENCODE_CONFIG_DIR. `.opencode/` folders count only when they exist; opencode creates the others.
 */
export async function opencodeConfigDirs(cwd: string, env: NodeJS.ProcessEnv, home: string = homedir()): Promise<string[]> {
  const isDir = (path: string) =>
    stat(path).then(
      (s) => s.isDirectory(),
      () => false,
    );
  const dirs = [join(env.XDG_CONFIG_HOME || join(home, ".config"), "opencode")];
  const disabled = env.OPENCODE_DISABLE_PROJECT_CONFIG === "1" || env.OPENCODE_DISABLE_PROJECT_CONFIG?.toLowerCase() === "true";
  if (!disabled)
    for (const dir of (await projectDirs(cwd)).reverse()) if (await isDir(join(dir, ".opencode"))) dirs.push(join(dir, ".opencode"));
  if (await isDir(join(home, ".opencode"))) dirs.push(join(home, ".opencode"));
  if (env.OPENCODE_CONFIG_DIR) dirs.push(resolve(cwd, env.OPENCODE_CONFIG_DIR));
  return [...new Set(dirs)];
}

export interface LoadOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** `--config PATH`: only this file. */
  explicitPath?: string;
}

export async function loadOpencodeConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const sources: ConfigSource[] = [];
  let merged: Record<string, unknown> = {};
  const found = options.explicitPath
    ? [{ origin: "--config" as const, path: resolve(cwd, options.explicitPath) }]
    : (
        await Promise.all(
          (await candidates(cwd, env, options.home ?? homedir())).map(async (c) => ((await exists(c.path)) ? c : undefined)),
        )
      ).filter((c) => c !== undefined);
  if (options.explicitPath && !(await exists(found[0]?.path ?? ""))) {
    sources.push({ origin: "--config", path: found[0]?.path ?? options.explicitPath, error: "ENOENT" });
    return { sources, config: {} };
  }
  // A variable that names a file which is not there is a mistake worth showing, not a silent skip.
  if (!options.explicitPath && env.OPENCODE_CONFIG) {
    const path = resolve(cwd, env.OPENCODE_CONFIG);
    if (!(await exists(path)))
      sources.push({ origin: "OPENCODE_CONFIG", path, error: "ENOENT (OPENCODE_CONFIG names a file that does not exist)" });
  }
  for (const candidate of found) {
    const { source, value } = await readSource(candidate.origin, candidate.path, env);
    sources.push(source);
    if (value) merged = mergeConfig(merged, value);
  }
  if (!options.explicitPath && env.OPENCODE_CONFIG_CONTENT) {
    const parsed = parseJsonc(substituteEnvReferences(env.OPENCODE_CONFIG_CONTENT, env));
    sources.push({ origin: "OPENCODE_CONFIG_CONTENT", path: "OPENCODE_CONFIG_CONTENT", ...(parsed.error ? { error: parsed.error } : {}) });
    if (parsed.value) merged = mergeConfig(merged, parsed.value);
  }
  return { sources, config: merged as OpencodeConfig };
}
