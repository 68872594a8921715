/**
 * An optional store of access tokens on disk, so that several `opencode run` calls of one CI job share one grant.
 * The key comes from file-key.ts, the directory from cache-dir.ts.
 *
 * The in-memory TokenCache (token-cache.ts) still decides when to refresh; this module only stores and finds a
 * token across processes. It is an optimisation, never a dependency: every problem is a miss (read) or a logged
 * no-op (write), and nothing here throws to the caller.
 *
 * - One file per key: `<dir>/<key>.json`, where the key (tokenCacheKey) is a hash of everything that shapes the
 *   token, the job's identity included (file-key.ts). Only the access token and its expiry data are stored: never a subject
 *   token, a client secret or a private key.
 * - Written atomically: a temp file in the same directory (O_EXCL, mode 0600, random name), fsync, then rename
 *   over the final name. A reader sees the old file or the new one, never a partial one.
 * - Trusted only when it is ours (POSIX): the directory must be a real directory (not a symlink), owned by this
 *   user and not writable by group or others; the file must be a regular file (not a symlink), owned by this
 *   user, with no group or other permission bits, and its content must name the key it was read for.
 *   `write` creates the directory 0700 and tightens an existing one we own to 0700; a directory owned by
 *   someone else is refused. `read` never changes anything: a loose directory or file is a miss.
 * - Threat model: other users of the machine. The parent of the cache directory must not be writable by them
 *   (home, XDG_CACHE_HOME and the sticky /tmp all qualify). A process running as the same user can read the token:
 *   see docs for shared self-hosted runners. On Windows, permissions come from the per-user %LOCALAPPDATA% ACL;
 *   the mode and owner checks are skipped and only the symlink and content checks apply.
 */
import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { chmod, lstat, mkdir, open, rename, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { describeCause } from "../describe-failure.js";
import type { AccessToken } from "../access-token.js";
import { createLogger, type Logger } from "../log.js";

/** A cached token is used only if it stays valid at least this long (ms) after it is read. */
export const DEFAULT_MIN_VALIDITY_MS = 60_000;
/** The `v` of the file format; any other value is a miss. */
export const FILE_FORMAT_VERSION = 1;

const KEY_PATTERN = /^[0-9a-f]{64}$/;
/** A token file is a few KB at most; anything much larger is not ours. */
const MAX_FILE_BYTES = 64 * 1024;
const EXPIRY_SOURCES: ReadonlySet<string> = new Set<AccessToken["expirySource"]>(["expires_in", "jwt_exp", "default", "expire_time"]);
const POSIX = process.platform !== "win32";
// Absent on Windows; 0 turns them into no-ops there.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

/** The file's JSON. `scope` is null when the IdP stated none (JSON has no undefined). */
interface CacheFile {
  v: typeof FILE_FORMAT_VERSION;
  key: string;
  accessToken: string;
  tokenType: "Bearer";
  issuedAt: number;
  expiresAt: number;
  expirySource: AccessToken["expirySource"];
  scope: string | null;
}

/** Why a miss happened; `warn` ones mean the cache is unusable or tampered with, and the user should look. */
interface Miss {
  miss: string;
  warn?: boolean;
}

const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, "0");
const errnoOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;
/** An epoch-ms time that Date can represent (a larger finite number would make toISOString throw). */
const isEpochMs = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= 8.64e15;

/** Why `st` must not be trusted: not ours, or writable by others. POSIX only. */
function foreignOrLoose(st: Stats, what: "directory" | "file", forbiddenBits: number): string | undefined {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `the cache ${what} is owned by uid ${st.uid}, not by this user (uid ${uid})`;
  if ((st.mode & forbiddenBits) !== 0) return `the cache ${what} has mode ${octal(st.mode)}, which gives access to group or others`;
  return undefined;
}

function parseEntry(text: string, key: string): AccessToken | Miss {
  let data: Partial<Record<keyof CacheFile, unknown>>;
  try {
    data = JSON.parse(text) as typeof data;
  } catch {
    return { miss: "the cache file is not valid JSON" };
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) return { miss: "the cache file is not a JSON object" };
  if (data.v !== FILE_FORMAT_VERSION) return { miss: `the cache file is not in format version ${FILE_FORMAT_VERSION}` };
  if (data.key !== key) return { miss: "the cache file belongs to another key" };
  const { accessToken, tokenType, issuedAt, expiresAt, expirySource, scope } = data;
  if (typeof accessToken !== "string" || accessToken.length === 0) return { miss: "the cache file has no access token" };
  if (tokenType !== "Bearer") return { miss: "the cache file's token type is not Bearer" };
  if (!isEpochMs(issuedAt) || !isEpochMs(expiresAt) || expiresAt < issuedAt)
    return { miss: "the cache file's issuedAt/expiresAt are invalid" };
  if (typeof expirySource !== "string" || !EXPIRY_SOURCES.has(expirySource)) return { miss: "the cache file's expirySource is invalid" };
  if (scope !== undefined && scope !== null && typeof scope !== "string") return { miss: "the cache file's scope is invalid" };
  return {
    value: accessToken,
    tokenType: "Bearer",
    issuedAt,
    expiresAt,
    expirySource: expirySource as AccessToken["expirySource"],
    scope: typeof scope === "string" ? scope : undefined,
  };
}

export interface FileTokenCacheOptions {
  /** The cache directory; usually defaultCacheDir(). Resolved to an absolute path once, here. */
  dir: string;
  now?: () => number;
  /** Defaults to createLogger(). The token is never passed to it. */
  logger?: Logger;
}

export class FileTokenCache {
  readonly dir: string;
  readonly #now: () => number;
  readonly #log: Logger;

  constructor(options: FileTokenCacheOptions) {
    this.dir = path.resolve(options.dir);
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? createLogger();
  }

  /**
   * The stored token for key if it parses, belongs to this key, and is not expired (with a min remaining validity
   * margin param, default 60 s); anything else (missing, corrupt JSON, wrong version, foreign key, wrong owner uid
   * on POSIX, group/world-writable file or dir, symlink) is a miss — never throws.
   */
  async read(key: string, minValidityMs: number = DEFAULT_MIN_VALIDITY_MS): Promise<AccessToken | undefined> {
    let result: AccessToken | Miss;
    try {
      result = await this.#read(key, minValidityMs);
    } catch (err) {
      result = { miss: `unexpected failure (${describeCause(err)})`, warn: true };
    }
    const keyPrefix = this.#keyPrefix(key);
    if ("miss" in result) {
      const fields = { event: "file_cache_miss", dir: this.dir, keyPrefix };
      if (result.warn) this.#log.warn(fields, `file token cache not used: ${result.miss}`);
      else this.#log.debug(fields, `file token cache miss: ${result.miss}`);
      return undefined;
    }
    this.#log.debug(
      { event: "file_cache_hit", dir: this.dir, keyPrefix, expiresAt: new Date(result.expiresAt).toISOString() },
      "access token read from the file cache",
    );
    return result;
  }

  /**
   * Writes atomically: dir created 0700 (and re-chmodded if it exists with looser mode only if owned by us, else
   * refuse to use it -> log + no-op), temp file in the same dir created with mode 0600 (O_EXCL, random name),
   * fsync, rename over `<key>.json`. Failures are logged at warn and swallowed (the cache is an optimisation,
   * never an error).
   */
  async write(key: string, token: AccessToken): Promise<void> {
    const keyPrefix = this.#keyPrefix(key);
    try {
      const refused = this.#unwritable(key, token);
      if (refused) {
        this.#log[refused.warn ? "warn" : "debug"](
          { event: "file_cache_write_skipped", dir: this.dir, keyPrefix },
          `access token not written to the file cache: ${refused.miss}`,
        );
        return;
      }
      const dirProblem = await this.#prepareDir();
      if (dirProblem) {
        this.#log.warn({ event: "file_cache_dir_refused", dir: this.dir }, `file token cache not used: ${dirProblem}`);
        return;
      }
      await this.#writeFile(key, token);
      this.#log.debug(
        { event: "file_cache_written", dir: this.dir, keyPrefix, expiresAt: new Date(token.expiresAt).toISOString() },
        "access token written to the file cache",
      );
    } catch (err) {
      this.#log.warn(
        { event: "file_cache_write_failed", dir: this.dir, keyPrefix, code: errnoOf(err) },
        `could not write the file token cache (${describeCause(err)}); continuing without it`,
      );
    }
  }

  /** The first 12 hex digits: enough to tell keys apart in logs (the whole hash would be scrubbed as token-shaped). */
  #keyPrefix(key: string): string | undefined {
    return KEY_PATTERN.test(key) ? key.slice(0, 12) : undefined;
  }

  #file(key: string): string {
    return path.join(this.dir, `${key}.json`);
  }

  async #read(key: string, minValidityMs: number): Promise<AccessToken | Miss> {
    // The key becomes a file name: anything but a hash could escape the directory.
    if (!KEY_PATTERN.test(key)) return { miss: "the key is not a sha256 hex digest", warn: true };
    let dirStat: Stats;
    try {
      dirStat = await lstat(this.dir);
    } catch (err) {
      return errnoOf(err) === "ENOENT"
        ? { miss: "the cache directory does not exist" }
        : { miss: `the cache directory cannot be read (${describeCause(err)})`, warn: true };
    }
    if (dirStat.isSymbolicLink()) return { miss: "the cache directory is a symbolic link", warn: true };
    if (!dirStat.isDirectory()) return { miss: "the cache directory path is not a directory", warn: true };
    if (POSIX) {
      const problem = foreignOrLoose(dirStat, "directory", 0o022);
      if (problem) return { miss: problem, warn: true };
    }

    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a symlink fails here instead of being followed. O_NONBLOCK: a FIFO cannot block the open.
      handle = await open(this.#file(key), constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      const code = errnoOf(err);
      if (code === "ENOENT") return { miss: "no cached token for this key" };
      // Linux and macOS say ELOOP for a symlink under O_NOFOLLOW; FreeBSD says EMLINK.
      if (code === "ELOOP" || code === "EMLINK") return { miss: "the cache file is a symbolic link", warn: true };
      return { miss: `the cache file cannot be opened (${describeCause(err)})`, warn: true };
    }
    let text: string;
    try {
      // fstat of the open file: what is checked is what is read.
      const st = await handle.stat();
      if (!st.isFile()) return { miss: "the cache file is not a regular file", warn: true };
      if (POSIX) {
        const problem = foreignOrLoose(st, "file", 0o077);
        if (problem) return { miss: problem, warn: true };
      }
      if (st.size > MAX_FILE_BYTES) return { miss: `the cache file is larger than ${MAX_FILE_BYTES} bytes` };
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }

    const parsed = parseEntry(text, key);
    if ("miss" in parsed) return parsed;
    const now = this.#now();
    if (parsed.expiresAt <= now) return { miss: "the cached token has expired" };
    if (parsed.expiresAt - now < minValidityMs)
      return { miss: `the cached token expires in less than ${Math.round(minValidityMs / 1000)} s` };
    return parsed;
  }

  /** Why this token must not be written, if so. */
  #unwritable(key: string, token: AccessToken): Miss | undefined {
    if (!KEY_PATTERN.test(key)) return { miss: "the key is not a sha256 hex digest", warn: true };
    if (typeof token?.value !== "string" || token.value.length === 0 || token.tokenType !== "Bearer")
      return { miss: "not a Bearer access token", warn: true };
    if (!isEpochMs(token.issuedAt) || !isEpochMs(token.expiresAt) || !EXPIRY_SOURCES.has(token.expirySource))
      return { miss: "the token's expiry data is invalid", warn: true };
    if (token.expiresAt <= this.#now()) return { miss: "the token has already expired" };
    return undefined;
  }

  /** Create the directory 0700, or check and tighten an existing one; the reason it must not be used, if so. */
  async #prepareDir(): Promise<string | undefined> {
    // Creates missing parents too, all 0700 (minus umask); an existing directory is left as it is, and checked below.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (!POSIX) {
      const st = await lstat(this.dir);
      if (st.isSymbolicLink()) return "the cache directory is a symbolic link";
      return st.isDirectory() ? undefined : "the cache directory path is not a directory";
    }
    // Check and chmod through one descriptor opened without following a symlink: nothing can be swapped in between.
    let handle: FileHandle;
    try {
      handle = await this.#openDir();
    } catch (err) {
      const code = errnoOf(err);
      if (code === "ENOTDIR" || code === "ELOOP") {
        const st = await lstat(this.dir);
        return st.isSymbolicLink() ? "the cache directory is a symbolic link" : "the cache directory path is not a directory";
      }
      if (code !== "EACCES") throw err;
      // Our own directory without read permission (a umask of 0777 creates it 0000): it cannot be opened, so make
      // it 0700 by path, after lstat says it is a real directory of ours, then open it again and check as usual.
      const st = await lstat(this.dir);
      if (st.isSymbolicLink() || !st.isDirectory() || st.uid !== process.getuid?.()) throw err;
      await chmod(this.dir, 0o700);
      handle = await this.#openDir();
    }
    try {
      const st = await handle.stat();
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid)
        return `the cache directory is owned by uid ${st.uid}, not by this user (uid ${uid}); refusing to use it`;
      if ((st.mode & 0o777) !== 0o700) {
        await handle.chmod(0o700);
        this.#log.info(
          { event: "file_cache_dir_tightened", dir: this.dir, from: octal(st.mode), to: "0700" },
          "file token cache directory permissions set to 0700",
        );
      }
      return undefined;
    } finally {
      await handle.close();
    }
  }

  #openDir(): Promise<FileHandle> {
    return open(this.dir, constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  }

  async #writeFile(key: string, token: AccessToken): Promise<void> {
    const entry: CacheFile = {
      v: FILE_FORMAT_VERSION,
      key,
      accessToken: token.value,
      tokenType: "Bearer",
      issuedAt: token.issuedAt,
      expiresAt: token.expiresAt,
      expirySource: token.expirySource,
      scope: token.scope ?? null,
    };
    // Same directory as the final file, so the rename never crosses file systems. The leading dot and `.tmp` keep it
    // apart from `<key>.json`; the random part makes concurrent writers (and a crashed one's leftover) never collide.
    const temp = path.join(this.dir, `.${key}.${randomBytes(8).toString("hex")}.tmp`);
    let handle: FileHandle | undefined;
    let renamed = false;
    try {
      handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, 0o600);
      // The umask may have removed bits from 0600 (never added any); set it exactly.
      if (POSIX) await handle.chmod(0o600);
      await handle.writeFile(`${JSON.stringify(entry)}\n`, "utf8");
      // Data on disk before the rename makes it visible, so a crash cannot leave an empty <key>.json behind.
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, this.#file(key));
      renamed = true;
    } finally {
      if (handle) await handle.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
    }
  }
}
