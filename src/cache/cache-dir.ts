/** Where the file cache lives: a per-user directory, or the one the job names. */
import { homedir } from "node:os";
import path from "node:path";

/** Overrides the cache directory, e.g. a per-job directory on a persistent runner. */
export const CACHE_DIR_ENV = "OPENCODE_CI_AUTH_CACHE_DIR";
const APP_DIR = "opencode-ci-auth";

/**
 * The per-user cache dir: $OPENCODE_CI_AUTH_CACHE_DIR, else $XDG_CACHE_HOME/opencode-ci-auth, else
 * ~/.cache/opencode-ci-auth (on Windows %LOCALAPPDATA%\opencode-ci-auth). A relative OPENCODE_CI_AUTH_CACHE_DIR
 * is resolved from the current directory; a relative XDG_CACHE_HOME or LOCALAPPDATA is ignored (the XDG spec
 * says so). `platform` exists for tests.
 */
export function defaultCacheDir(
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
  platform: NodeJS.Platform = process.platform,
): string {
  const p = platform === "win32" ? path.win32 : path.posix;
  const override = env[CACHE_DIR_ENV]?.trim();
  if (override) return p.isAbsolute(override) ? p.normalize(override) : path.resolve(override);
  const xdg = env.XDG_CACHE_HOME?.trim();
  if (xdg && p.isAbsolute(xdg)) return p.join(xdg, APP_DIR);
  if (platform === "win32") {
    const local = env.LOCALAPPDATA?.trim();
    return p.join(local && p.isAbsolute(local) ? local : p.join(home, "AppData", "Local"), APP_DIR);
  }
  return p.join(home, ".cache", APP_DIR);
}
