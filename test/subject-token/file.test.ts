/**
 * FileSource: a JWT in a file, re-read for every grant (kubelet and sidecars rotate it).
 * Files live in a temp dir from fs.mkdtemp.
 */
import { chmod, cp, mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { CiAuthError, SubjectTokenUnavailableError } from "../../src/errors.js";
import { FileSource } from "../../src/subject-token/file.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";

const PROVIDER = "miaou";

let ci: CiIssuer;
let dir: string;
let n = 0;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "file-source-"));
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const context: SubjectTokenContext = {
  providerId: PROVIDER,
  env: {},
  fetch: () => Promise.reject(new Error("the file source must not make requests")),
  timeoutMs: 10_000,
};

/** A fresh path in the temp dir. */
function freshPath(name = "token"): string {
  n += 1;
  return join(dir, `${n}-${name}`);
}

async function rejectionOf(promise: Promise<unknown>): Promise<CiAuthError> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected the source to fail, it produced a token");
  expect(outcome.err).toBeInstanceOf(SubjectTokenUnavailableError);
  return outcome.err as CiAuthError;
}

const execFileAsync = promisify(execFile);
const DIST = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist");
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe("FileSource", () => {
  it("exposes its type, path and expected audience", () => {
    const source = new FileSource("/var/run/secrets/tokens/oidc", "api://acme");
    expect(source.type).toBe("file");
    expect(source.path).toBe("/var/run/secrets/tokens/oidc");
    expect(source.expectedAudience).toBe("api://acme");
  });

  it("returns the token in the file, trimmed of surrounding whitespace and newlines", async () => {
    const token = await ci.mint({ style: "plain" });
    const path = freshPath();
    await writeFile(path, `\n  ${token}\r\n\n`);
    const value = await new FileSource(path, undefined).getSubjectToken(context);
    expect(value === token).toBe(true);
  });

  it("re-reads the file on every call: a rewritten file gives the new token", async () => {
    const path = freshPath();
    const source = new FileSource(path, undefined);
    const first = await ci.mint({ style: "plain" });
    await writeFile(path, first);
    expect((await source.getSubjectToken(context)) === first).toBe(true);
    const second = await ci.mint({ style: "plain" });
    await writeFile(path, `${second}\n`);
    expect((await source.getSubjectToken(context)) === second).toBe(true);
  });

  it("follows an atomic replace (write elsewhere, rename over)", async () => {
    const path = freshPath();
    const source = new FileSource(path, undefined);
    const first = await ci.mint({ style: "plain" });
    await writeFile(path, first);
    expect((await source.getSubjectToken(context)) === first).toBe(true);
    const second = await ci.mint({ style: "plain" });
    const tmp = `${path}.tmp`;
    await writeFile(tmp, second);
    await rename(tmp, path);
    expect((await source.getSubjectToken(context)) === second).toBe(true);
  });

  it("follows a kubelet-style symlink swap (..data -> new directory)", async () => {
    const base = freshPath("projected");
    await mkdir(join(base, "v1"), { recursive: true });
    await mkdir(join(base, "v2"), { recursive: true });
    const first = await ci.mint({ style: "plain" });
    const second = await ci.mint({ style: "plain" });
    await writeFile(join(base, "v1", "token"), first);
    await writeFile(join(base, "v2", "token"), second);
    await symlink("v1", join(base, "..data"));
    await symlink(join("..data", "token"), join(base, "token"));
    const source = new FileSource(join(base, "token"), undefined);
    expect((await source.getSubjectToken(context)) === first).toBe(true);
    await symlink("v2", join(base, "..data_tmp"));
    await rename(join(base, "..data_tmp"), join(base, "..data"));
    expect((await source.getSubjectToken(context)) === second).toBe(true);
  });

  it("a missing file: SubjectTokenUnavailableError saying it does not exist, with the path", async () => {
    const path = freshPath("absent");
    const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
    expect(err.code).toBe("ERR_SUBJECT_TOKEN_UNAVAILABLE");
    expect(err.providerId).toBe(PROVIDER);
    expect((err as SubjectTokenUnavailableError).source).toBe("file");
    expect(err.message).toContain(`provider "${PROVIDER}": file subject token:`);
    expect(err.message).toContain(`the token file ${path} does not exist`);
    expect(err.message).toContain("subjectTokenSource.path");
  });

  it("a file deleted between calls fails on the next call", async () => {
    const path = freshPath();
    const source = new FileSource(path, undefined);
    await writeFile(path, await ci.mint({ style: "plain" }));
    await source.getSubjectToken(context);
    await unlink(path);
    const err = await rejectionOf(source.getSubjectToken(context));
    expect(err.message).toMatch(/does not exist/);
  });

  it.each([
    ["empty", ""],
    ["whitespace only", "  \n\t\r\n"],
  ])("an %s file: SubjectTokenUnavailableError saying it is empty", async (_label, content) => {
    const path = freshPath();
    await writeFile(path, content);
    const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
    expect(err.message).toContain(`the token file ${path} is empty`);
  });

  it("a directory instead of a file: SubjectTokenUnavailableError with the error code", async () => {
    const path = freshPath("a-dir");
    await mkdir(path);
    const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
    expect(err.message).toContain(`the token file ${path} cannot be read (EISDIR)`);
  });

  it("a path through a regular file: SubjectTokenUnavailableError with the error code", async () => {
    const parent = freshPath("plain-file");
    await writeFile(parent, "x");
    const path = join(parent, "token");
    const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
    expect(err.message).toContain(`the token file ${path} cannot be read (ENOTDIR)`);
  });

  it("an unreadable file (mode 000): SubjectTokenUnavailableError saying it is not readable", async () => {
    const path = freshPath("secret");
    await writeFile(path, await ci.mint({ style: "plain" }));
    await chmod(path, 0o000);
    if (!isRoot) {
      const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
      expect(err.message).toContain(`the token file ${path} is not readable by this user`);
      return;
    }
    // root reads anything: run the same source as "nobody" in a child process. The child cannot read this checkout
    // (CI clones into a root-only dir), so it gets a copy of the build (`npm test` builds first; the bundle needs no
    // node_modules) and asks the library entry for a token from this file.
    await chmod(dir, 0o755);
    const copy = join(dir, "built");
    await cp(DIST, copy, { recursive: true });
    await execFileAsync("chmod", ["-R", "a+rX", copy]);
    const block = { issuer: "http://127.0.0.1:9/", clientId: "ci", cache: "memory", subjectTokenSource: { type: "file", path } };
    const script = [
      `import { createTokenProvider, parseOAuth2Block } from ${JSON.stringify(pathToFileURL(join(copy, "lib.js")).href)};`,
      `const parsed = parseOAuth2Block("${PROVIDER}", ${JSON.stringify(block)}, {});`,
      `if (!parsed.ok) throw parsed.error;`,
      `try { await createTokenProvider("${PROVIDER}", parsed.config, { env: {} }).getToken(); console.log(JSON.stringify({ ok: true })); }`,
      `catch (e) { console.log(JSON.stringify({ ok: false, name: e.name, message: e.message })); }`,
    ].join("\n");
    const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script], {
      uid: 65534,
      gid: 65534,
      cwd: dir,
      env: { PATH: process.env.PATH ?? "" },
      timeout: 15_000,
    });
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { ok: boolean; name?: string; message?: string };
    expect(result.ok).toBe(false);
    expect(result.name).toBe("SubjectTokenUnavailableError");
    expect(result.message).toContain(`the token file ${path} is not readable by this user`);
  });

  it("never puts the file's content in a message", async () => {
    const token = await ci.mint({ style: "plain" });
    const path = freshPath();
    await writeFile(path, token);
    await rm(path);
    const err = await rejectionOf(new FileSource(path, undefined).getSubjectToken(context));
    expect(err.message.includes(token)).toBe(false);
  });
});
