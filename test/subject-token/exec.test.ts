/**
 * ExecSource: refused unless the job's environment names the program in OPENCODE_CI_AUTH_ALLOW_EXEC; then it runs
 * a fake program on PATH (no shell) and returns what it prints.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { parseOAuth2Block } from "../../src/config/parse.js";
import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { ALLOW_EXEC_ENV, ExecSource, allowedPrograms } from "../../src/subject-token/exec.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { pathWith, writeFakeCli, type FakeCli } from "../support/fake-cli.js";
import { fp, rejectionOf } from "../support/harness.js";

let ci: CiIssuer;
let dir: string;
let tool: FakeCli;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "exec-source-"));
  tool = await writeFakeCli(dir, "mint-token");
  token = await ci.mint({ aud: "api://x" });
  await tool.plan({ tokens: { "api://x": token } });
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const context = (env: NodeJS.ProcessEnv): SubjectTokenContext => ({
  providerId: "miaou",
  env: { PATH: pathWith(dir), ...env },
  fetch: globalThis.fetch,
  timeoutMs: 10_000,
});
const source = (command: [string, ...string[]] = ["mint-token", "--audience", "api://x"], timeoutSeconds = 5) =>
  new ExecSource(command, timeoutSeconds, "api://x");

describe("ExecSource: the switch", () => {
  it("is refused without OPENCODE_CI_AUTH_ALLOW_EXEC, and runs nothing", async () => {
    const before = (await tool.calls()).length;
    const err = (await rejectionOf(source().getSubjectToken(context({})))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      'exec subject token: refused to run "mint-token": OPENCODE_CI_AUTH_ALLOW_EXEC must name it in the job\'s environment (it is not set). A config file alone cannot allow a command, since a pull request can change it: set OPENCODE_CI_AUTH_ALLOW_EXEC=mint-token in the CI job definition.',
    );
    expect((await tool.calls()).length).toBe(before);
  });

  it('is refused when the switch allows other programs only ("1" is not a wildcard)', async () => {
    for (const value of ["1", "true", "*", "other-tool", `${join(dir, "mint-token")}`]) {
      const err = (await rejectionOf(source().getSubjectToken(context({ [ALLOW_EXEC_ENV]: value })))) as CiAuthError;
      expect(err.reason, value).toContain(`(it allows "${value}", not "mint-token")`);
    }
  });

  it("runs the program when the switch names it (in a comma-separated list)", async () => {
    const got = await source().getSubjectToken(context({ [ALLOW_EXEC_ENV]: "other-tool, mint-token" }));
    expect(fp(got)).toBe(fp(token));
    expect((await tool.calls()).at(-1)?.argv).toEqual(["--audience", "api://x"]);
  });

  it("compares the program exactly as written: an absolute path must be allowed as that path", async () => {
    const absolute = join(dir, "mint-token");
    expect(fp(await source([absolute, "--audience", "api://x"]).getSubjectToken(context({ [ALLOW_EXEC_ENV]: absolute })))).toBe(fp(token));
    await expect(source([absolute]).getSubjectToken(context({ [ALLOW_EXEC_ENV]: "mint-token" }))).rejects.toBeInstanceOf(
      SubjectTokenUnavailableError,
    );
  });

  it("cannot be switched on from the config file: there is no such field", () => {
    const parsed = parseOAuth2Block(
      "miaou",
      { issuer: "https://auth.example.com", clientId: "c", subjectTokenSource: { type: "exec", command: ["mint-token"], allowExec: true } },
      {},
    );
    expect(parsed.ok).toBe(false);
    if (!parsed.ok)
      expect(parsed.error.issues).toEqual([
        {
          path: "oauth2.subjectTokenSource.allowExec",
          message: 'unknown field "allowExec" (check its spelling against docs/configuration.md)',
        },
      ]);
  });

  it("allowedPrograms splits and trims the list", () => {
    expect(allowedPrograms({ [ALLOW_EXEC_ENV]: " a ,b,, /usr/bin/c " })).toEqual(["a", "b", "/usr/bin/c"]);
    expect(allowedPrograms({})).toEqual([]);
  });
});

describe("ExecSource: running", () => {
  it("stops the program at timeoutSeconds", async () => {
    await tool.plan({ tokens: { "*": token }, sleepMs: 30_000 });
    const err = (await rejectionOf(
      source(["mint-token"], 0.3).getSubjectToken(context({ [ALLOW_EXEC_ENV]: "mint-token" })),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.reason).toBe('exec subject token: the command "mint-token" did not finish within 0.3s and was stopped.');
    await tool.plan({ tokens: { "api://x": token } });
  });

  it("a program that is not found says so", async () => {
    const err = (await rejectionOf(
      source(["no-such-minter"]).getSubjectToken(context({ [ALLOW_EXEC_ENV]: "no-such-minter" })),
    )) as CiAuthError;
    expect(err.reason).toBe(
      'exec subject token: "no-such-minter" was not found (ENOENT). Use an absolute path, or a program on the job\'s PATH.',
    );
  });

  it("has no cache identity", async () => {
    expect(await source().cacheIdentity()).toBeUndefined();
  });
});
