/**
 * src/cache/file-store.ts on real temporary directories (no fs mocks): round trip, permissions under any umask,
 * atomic replacement under concurrent readers (in this process and in another one), every kind of bad file as a
 * miss that does not throw, ownership and symlink refusals, and what the file holds. The key and the directory
 * have their own tests (file-key.test.ts, cache-dir.test.ts).
 *
 * Ownership cases need a file owned by someone else: they run when the tests run as root (chown to 65534, nobody).
 */
import { spawn } from "node:child_process";
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { tokenCacheKey, type TokenCacheKeyInput } from "../../src/cache/file-key.js";
import { DEFAULT_MIN_VALIDITY_MS, FileTokenCache } from "../../src/cache/file-store.js";
import type { AccessToken } from "../../src/grant/grant.js";
import { createLogger } from "../../src/log.js";

const T0 = 1_750_000_000_000;
const POSIX = process.platform !== "win32";
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let now: number;
let root: string;
let dir: string;

beforeEach(async () => {
  now = T0;
  root = await mkdtemp(path.join(tmpdir(), "ci-auth-file-cache-"));
  dir = path.join(root, "cache");
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A logger at trace level writing into memory. */
function capture() {
  const lines: string[] = [];
  const logger = createLogger({ level: "trace", destination: { write: (s: string) => void lines.push(s) } });
  return {
    logger,
    raw: () => lines.join(""),
    events: () => lines.map((l) => (JSON.parse(l) as { event?: string }).event),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function cacheWith(options: { dir?: string } = {}) {
  const log = capture();
  const cache = new FileTokenCache({ dir: options.dir ?? dir, now: () => now, logger: log.logger });
  return { cache, log };
}

/** A token issued now; word-like so that the log scrubber would NOT hide it (a leak would show). */
function issue(value = "access-token-word-like", lifetimeSeconds = 3600): AccessToken {
  return {
    value,
    tokenType: "Bearer",
    issuedAt: now,
    expiresAt: now + lifetimeSeconds * 1000,
    expirySource: "expires_in",
    scope: "openid models.read",
  };
}

const BASE: TokenCacheKeyInput = {
  issuer: "https://auth.example.com/realms/acme",
  clientId: "opencode-ci",
  authFlow: "jwt_bearer",
  scopes: ["openid", "models.read"],
  source: {
    type: "github_actions",
    identity: '["github_actions","https://auth.example.com/realms/acme","https://github.com","123456","987","1","review"]',
  },
};
const KEY = tokenCacheKey(BASE);
const fileOf = (key = KEY) => path.join(dir, `${key}.json`);
const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

/** Write a cache file by hand, as another program (or an attacker) would. */
async function plant(content: string, mode = 0o600): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(fileOf(), content, { mode });
  await chmod(fileOf(), mode);
}

function entry(overrides: Record<string, unknown> = {}): string {
  // T0, not `now`: the table below is built before any test sets `now`.
  return JSON.stringify({
    v: 1,
    key: KEY,
    accessToken: "planted",
    tokenType: "Bearer",
    issuedAt: T0,
    expiresAt: T0 + 3_600_000,
    expirySource: "expires_in",
    scope: null,
    ...overrides,
  });
}

describe("round trip", () => {
  it("a written token reads back equal, from another instance on the same dir", async () => {
    const token = issue();
    await cacheWith().cache.write(KEY, token);
    expect(await cacheWith().cache.read(KEY)).toEqual(token);
  });

  it("scope undefined survives the trip as undefined", async () => {
    const token = { ...issue(), scope: undefined };
    const { cache } = cacheWith();
    await cache.write(KEY, token);
    expect(await cache.read(KEY)).toEqual(token);
  });

  it("a second write replaces the first", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue("first-token"));
    await cache.write(KEY, issue("second-token"));
    expect((await cache.read(KEY))?.value).toBe("second-token");
  });

  it("keys do not see each other's tokens", async () => {
    const other = tokenCacheKey({ ...BASE, clientId: "other" });
    const { cache } = cacheWith();
    await cache.write(KEY, issue("mine"));
    expect(await cache.read(other)).toBeUndefined();
  });

  it("a missing directory or file is a miss, logged at debug only", async () => {
    const { cache, log } = cacheWith();
    expect(await cache.read(KEY)).toBeUndefined();
    await mkdir(dir, { mode: 0o700 });
    expect(await cache.read(KEY)).toBeUndefined();
    expect(log.records().map((r) => r.level)).toEqual([20, 20]);
  });

  it("creates missing parent directories", async () => {
    const nested = path.join(root, "a", "b", "cache");
    const { cache } = cacheWith({ dir: nested });
    await cache.write(KEY, issue());
    expect(await cache.read(KEY)).toBeDefined();
  });
});

describe.runIf(POSIX)("permissions", () => {
  let savedUmask: number;
  beforeEach(() => {
    savedUmask = process.umask();
  });
  afterEach(() => {
    process.umask(savedUmask);
  });

  it("dir 0700 and file 0600 even with umask 0", async () => {
    process.umask(0);
    const { cache } = cacheWith();
    await cache.write(KEY, issue());
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(fileOf())).toBe(0o600);
  });

  it("parents created on the way are 0700 too, with umask 0", async () => {
    process.umask(0);
    const nested = path.join(root, "parent", "cache");
    await cacheWith({ dir: nested }).cache.write(KEY, issue());
    expect(await modeOf(path.join(root, "parent"))).toBe(0o700);
    expect(await modeOf(nested)).toBe(0o700);
  });

  it("a restrictive umask (0777) still gives a usable 0700 dir and 0600 file", async () => {
    process.umask(0o777);
    const { cache } = cacheWith();
    await cache.write(KEY, issue());
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(fileOf())).toBe(0o600);
    expect(await cache.read(KEY)).toBeDefined();
  });

  it("a world-writable dir we own: read misses (warn), write tightens it to 0700, then reads hit", async () => {
    const { cache, log } = cacheWith();
    await cache.write(KEY, issue());
    await chmod(dir, 0o777);
    expect(await cache.read(KEY)).toBeUndefined();
    expect(log.records().at(-1)).toMatchObject({ level: 40, event: "file_cache_miss" });
    expect(log.raw()).toContain("mode 0777");
    await cache.write(KEY, issue("rewritten"));
    expect(await modeOf(dir)).toBe(0o700);
    expect(log.events()).toContain("file_cache_dir_tightened");
    expect((await cache.read(KEY))?.value).toBe("rewritten");
  });

  it.each([0o000, 0o500, 0o300])("an existing dir of ours with mode %o: write sets 0700 and succeeds", async (mode) => {
    await mkdir(dir);
    await chmod(dir, mode);
    const { cache } = cacheWith();
    await cache.write(KEY, issue());
    expect(await modeOf(dir)).toBe(0o700);
    expect(await cache.read(KEY)).toBeDefined();
  });

  it("a group-writable dir: miss", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue());
    await chmod(dir, 0o770);
    expect(await cache.read(KEY)).toBeUndefined();
  });

  it("a dir readable by others (0755) we own still serves reads (files are 0600); write tightens it", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue());
    await chmod(dir, 0o755);
    expect(await cache.read(KEY)).toBeDefined();
    await cache.write(KEY, issue());
    expect(await modeOf(dir)).toBe(0o700);
  });

  it.each([0o644, 0o640, 0o620, 0o602, 0o666])("a file with mode %o (group/other bits): miss with a warning", async (mode) => {
    await plant(entry(), mode);
    const { cache, log } = cacheWith();
    expect(await cache.read(KEY)).toBeUndefined();
    expect(log.records().at(-1)).toMatchObject({ level: 40, event: "file_cache_miss" });
  });
});

describe.runIf(POSIX && isRoot)("ownership (as root: files chowned to nobody)", () => {
  it("a file owned by another uid: miss", async () => {
    const { cache, log } = cacheWith();
    await cache.write(KEY, issue());
    await chown(fileOf(), NOBODY, NOBODY);
    expect(await cache.read(KEY)).toBeUndefined();
    expect(log.raw()).toContain(`owned by uid ${NOBODY}`);
  });

  it("a dir owned by another uid: read misses, write refuses and creates nothing", async () => {
    const { cache, log } = cacheWith();
    await cache.write(KEY, issue());
    await chown(dir, NOBODY, NOBODY);
    expect(await cache.read(KEY)).toBeUndefined();
    await chmod(dir, 0o777);
    await cache.write(tokenCacheKey({ ...BASE, clientId: "other" }), issue());
    expect(await readdir(dir)).toEqual([`${KEY}.json`]);
    expect(await modeOf(dir)).toBe(0o777); // not ours: not touched
    expect(log.records().at(-1)).toMatchObject({ level: 40, event: "file_cache_dir_refused" });
  });
});

describe("atomic replacement", () => {
  it("200 concurrent writes vs reads in this process: every read parses fully, no temp file is left", async () => {
    const { cache, log } = cacheWith();
    const reader = cacheWith().cache;
    await cache.write(KEY, issue("token-initial"));
    const written = new Set(["token-initial"]);
    const tokens = Array.from({ length: 200 }, (_, i) => issue(`token-${i}-${"x".repeat(i * 20)}`));
    for (const t of tokens) written.add(t.value);

    let done = false;
    const seen: (string | undefined)[] = [];
    const raw: string[] = [];
    const readLoop = async () => {
      while (!done) {
        const [token, text] = await Promise.all([reader.read(KEY), readFile(fileOf(), "utf8")]);
        seen.push(token?.value);
        raw.push(text);
      }
    };
    const readers = [readLoop(), readLoop(), readLoop()];
    await Promise.all(tokens.map((t) => cache.write(KEY, t)));
    done = true;
    await Promise.all(readers);

    expect(seen.length).toBeGreaterThan(0);
    // The file exists from the first write on, so a partial file would show up as a miss (or a parse error).
    expect(seen.filter((v) => v === undefined || !written.has(v))).toEqual([]);
    for (const text of raw) expect(written.has((JSON.parse(text) as { accessToken: string }).accessToken)).toBe(true);
    expect(await readdir(dir)).toEqual([`${KEY}.json`]);
    expect(log.records().filter((r) => (r.level as number) >= 40)).toEqual([]);
  });

  it("a reader in another process never sees a partial file during 200 writes", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue("token-initial"));
    const stopFile = path.join(root, "stop");
    // Reads the raw file in a tight loop until told to stop; counts full parses and failures.
    const script = `
      const fs = require("node:fs");
      const [file, stop] = process.argv.slice(1);
      let ok = 0, bad = 0, first;
      process.stdout.write("ready\\n");
      while (!fs.existsSync(stop)) {
        try {
          const data = JSON.parse(fs.readFileSync(file, "utf8"));
          if (typeof data.accessToken === "string" && data.accessToken.startsWith("token-")) ok++; else { bad++; first ??= "content"; }
        } catch (e) { bad++; first ??= e.code || e.name; }
      }
      process.stdout.write(JSON.stringify({ ok, bad, first }) + "\\n");
    `;
    const child = spawn(process.execPath, ["-e", script, fileOf(), stopFile], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (chunk: string) => {
        out += chunk;
        if (out.includes("ready\n")) resolve();
      }),
    );
    // Half in parallel, half one after the other, with tokens of changing length.
    const tokens = Array.from({ length: 200 }, (_, i) => issue(`token-${i}-${"y".repeat((i % 17) * 300)}`));
    await Promise.all(tokens.slice(0, 100).map((t) => cache.write(KEY, t)));
    for (const t of tokens.slice(100)) await cache.write(KEY, t);
    await writeFile(stopFile, "");
    expect(await exited).toBe(0);
    const result = JSON.parse(out.split("\n").filter(Boolean).at(-1) ?? "{}") as { ok: number; bad: number; first?: string };
    expect(result.bad, `first failure: ${result.first}`).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
    expect((await cache.read(KEY))?.value).toBe(tokens[199]?.value);
    expect(await readdir(dir)).toEqual([`${KEY}.json`]);
  });

  it("a failed write leaves no temp file and does not throw", async () => {
    const { cache, log } = cacheWith();
    await cache.write(KEY, issue());
    // A directory where <key>.json should go: the rename fails after the temp file was written.
    const blocker = tokenCacheKey({ ...BASE, clientId: "blocked" });
    await mkdir(path.join(dir, `${blocker}.json`));
    await writeFile(path.join(dir, `${blocker}.json`, "inside"), "x");
    await expect(cache.write(blocker, issue())).resolves.toBeUndefined();
    expect(log.records().at(-1)).toMatchObject({ level: 40, event: "file_cache_write_failed" });
    expect((await readdir(dir)).sort()).toEqual([`${KEY}.json`, `${blocker}.json`].sort());
  });
});

describe("bad files are misses, never errors", () => {
  // Each case names the reason it must be refused for, so a case cannot pass by failing some other check.
  const cases: [string, string, string][] = [
    ["corrupt JSON", "{not json", "not valid JSON"],
    ["an empty file", "", "not valid JSON"],
    ["a truncated file", entry().slice(0, 40), "not valid JSON"],
    ["a JSON array", "[]", "not a JSON object"],
    ["JSON null", "null", "not a JSON object"],
    ["wrong version", entry({ v: 2 }), "not in format version 1"],
    ["version as a string", entry({ v: "1" }), "not in format version 1"],
    ["no version", entry({ v: undefined }), "not in format version 1"],
    ["a foreign key", entry({ key: tokenCacheKey({ ...BASE, clientId: "someone-else" }) }), "belongs to another key"],
    ["no key", entry({ key: undefined }), "belongs to another key"],
    ["an empty access token", entry({ accessToken: "" }), "has no access token"],
    ["a non-string access token", entry({ accessToken: 42 }), "has no access token"],
    ["a DPoP token type", entry({ tokenType: "DPoP" }), "token type is not Bearer"],
    ["a non-numeric expiry", entry({ expiresAt: "tomorrow" }), "issuedAt/expiresAt are invalid"],
    ["expiry before issue", entry({ issuedAt: T0 + 7_200_000 }), "issuedAt/expiresAt are invalid"],
    ["an expiry beyond the Date range", entry({ expiresAt: 1e300 }), "issuedAt/expiresAt are invalid"],
    ["an unknown expirySource", entry({ expirySource: "guess" }), "expirySource is invalid"],
    ["a non-string scope", entry({ scope: ["openid"] }), "scope is invalid"],
    ["an oversized file", entry({ padding: "z".repeat(70_000) }), "larger than 65536 bytes"],
  ];

  it("the valid baseline of the table is a hit", async () => {
    await plant(entry());
    expect((await cacheWith().cache.read(KEY))?.value).toBe("planted");
  });

  it.each(cases)("%s", async (_name, content, reason) => {
    await plant(content);
    const { cache, log } = cacheWith();
    await expect(cache.read(KEY)).resolves.toBeUndefined();
    expect(log.events()).toEqual(["file_cache_miss"]);
    expect(log.raw()).toContain(reason);
  });

  it("an expired token: miss", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue("short", 120));
    now += 121_000;
    expect(await cache.read(KEY)).toBeUndefined();
  });

  it("an expired token is a miss even with a zero margin", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue("short", 120));
    now += 120_000;
    expect(await cache.read(KEY, 0)).toBeUndefined();
    now -= 1;
    expect((await cache.read(KEY, 0))?.value).toBe("short");
  });

  it("a token with less than the margin left: miss; with a smaller margin: hit", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, issue("short", 120));
    now += 120_000 - DEFAULT_MIN_VALIDITY_MS + 1; // 59.999 s left
    expect(await cache.read(KEY)).toBeUndefined();
    expect((await cache.read(KEY, 30_000))?.value).toBe("short");
    now -= 2; // 60.001 s left
    expect((await cache.read(KEY))?.value).toBe("short");
  });

  it("a key that is not a sha256 hex digest: miss for read, no-op for write (no path escapes the dir)", async () => {
    const { cache, log } = cacheWith();
    await expect(cache.read("../../etc/passwd")).resolves.toBeUndefined();
    await expect(cache.write("../escape", issue())).resolves.toBeUndefined();
    await expect(cache.write(KEY.toUpperCase(), issue())).resolves.toBeUndefined();
    expect(await lstat(path.join(root, "escape.json")).catch(() => undefined)).toBeUndefined();
    expect(await lstat(dir).catch(() => undefined)).toBeUndefined();
    expect(log.events()).toEqual(["file_cache_miss", "file_cache_write_skipped", "file_cache_write_skipped"]);
  });

  it("a key that names a valid file outside the dir is still refused", async () => {
    await mkdir(dir, { mode: 0o700 });
    await writeFile(path.join(root, "outside.json"), entry({ key: "../outside" }), { mode: 0o600 });
    const { cache } = cacheWith();
    expect(await cache.read("../outside")).toBeUndefined();
  });

  it("an already expired token is not written", async () => {
    const { cache } = cacheWith();
    await cache.write(KEY, { ...issue(), expiresAt: now });
    expect(await lstat(fileOf()).catch(() => undefined)).toBeUndefined();
  });

  it("a dir path that is a regular file: read misses, write logs a warning and resolves", async () => {
    await writeFile(dir, "not a dir");
    const { cache, log } = cacheWith();
    await expect(cache.read(KEY)).resolves.toBeUndefined();
    await expect(cache.write(KEY, issue())).resolves.toBeUndefined();
    expect(log.records().map((r) => [r.level, r.event])).toEqual([
      [40, "file_cache_miss"],
      [40, "file_cache_write_failed"],
    ]);
  });
});

describe.runIf(POSIX)("symlinks", () => {
  it("a symlinked cache file (to a valid, 0600, own file): miss", async () => {
    const { cache, log } = cacheWith();
    await cache.write(KEY, issue());
    const elsewhere = path.join(root, "elsewhere.json");
    await writeFile(elsewhere, await readFile(fileOf()), { mode: 0o600 });
    await rm(fileOf());
    await symlink(elsewhere, fileOf());
    expect(await cache.read(KEY)).toBeUndefined();
    expect(log.raw()).toContain("symbolic link");
  });

  it("a symlinked cache dir: read misses, write refuses and writes nothing through it", async () => {
    const real = path.join(root, "real");
    await cacheWith({ dir: real }).cache.write(KEY, issue());
    await symlink(real, dir);
    const { cache, log } = cacheWith();
    expect(await cache.read(KEY)).toBeUndefined();
    await cache.write(tokenCacheKey({ ...BASE, clientId: "other" }), issue());
    expect(await readdir(real)).toEqual([`${KEY}.json`]);
    expect(log.records().map((r) => [r.level, r.event])).toEqual([
      [40, "file_cache_miss"],
      [40, "file_cache_dir_refused"],
    ]);
  });

  it("a FIFO in place of the file does not block: miss", async () => {
    await mkdir(dir, { mode: 0o700 });
    const { execFileSync } = await import("node:child_process");
    execFileSync("mkfifo", ["-m", "600", fileOf()]);
    expect(await cacheWith().cache.read(KEY)).toBeUndefined();
  });
});

describe("what is stored", () => {
  it("one file, the token only in accessToken, exactly the documented fields", async () => {
    const token = issue("the-access-token-value");
    const { cache } = cacheWith();
    await cache.write(KEY, token);
    expect(await readdir(dir)).toEqual([`${KEY}.json`]);
    const text = await readFile(fileOf(), "utf8");
    expect(text.split(token.value).length - 1).toBe(1);
    const data = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(data)).toEqual(["v", "key", "accessToken", "tokenType", "issuedAt", "expiresAt", "expirySource", "scope"]);
    expect(data).toEqual({
      v: 1,
      key: KEY,
      accessToken: token.value,
      tokenType: "Bearer",
      issuedAt: token.issuedAt,
      expiresAt: token.expiresAt,
      expirySource: "expires_in",
      scope: "openid models.read",
    });
  });

  it("the token never reaches the logger, whatever happens", async () => {
    const token = issue("plainwordtoken");
    const { cache, log } = cacheWith();
    await cache.write(KEY, token);
    await cache.read(KEY);
    now = token.expiresAt;
    await cache.read(KEY);
    await writeFile(fileOf(), `${entry({ accessToken: token.value }).slice(0, -3)}`, { mode: 0o600 });
    await cache.read(KEY);
    await cache.write("bad key", token);
    expect(log.events().length).toBeGreaterThanOrEqual(5);
    expect(log.raw().includes(token.value)).toBe(false);
  });
});
