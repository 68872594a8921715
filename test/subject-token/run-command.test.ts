/**
 * runTokenCommand against a fake program on PATH: no shell, stdin closed, a hard time limit that holds even when
 * a grandchild keeps the pipes open, bounded output, and messages that quote stderr (scrubbed) but never stdout.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { MAX_COMMAND_OUTPUT_BYTES, runTokenCommand, type TokenCommand } from "../../src/subject-token/run-command.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { pathWith, writeFakeCli, type FakeCli } from "../support/fake-cli.js";
import { fp, rejectionOf } from "../support/harness.js";

let ci: CiIssuer;
let dir: string;
let tool: FakeCli;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "run-command-"));
  tool = await writeFakeCli(dir, "mint-token");
  token = await ci.mint({ aud: "api://x" });
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function command(extra: Partial<TokenCommand> = {}): TokenCommand {
  return {
    source: "exec",
    providerId: "miaou",
    program: "mint-token",
    args: ["--audience", "api://x"],
    label: "`mint-token`",
    timeoutMs: 5000,
    env: { PATH: pathWith(dir) },
    notFound: "mint-token is not installed.",
    ...extra,
  };
}

function expectNoToken(err: Error): void {
  expect(`${err.message}\n${err.stack ?? ""}`.includes(token), "message contains the token").toBe(false);
}

describe("runTokenCommand", () => {
  it("runs the program from PATH with its arguments and returns what it prints, trimmed", async () => {
    await tool.plan({ tokens: { "api://x": token } });
    expect(fp(await runTokenCommand(command()))).toBe(fp(token));
    expect((await tool.calls()).at(-1)?.argv).toEqual(["--audience", "api://x"]);
  });

  it("passes arguments literally, without a shell", async () => {
    await tool.plan({ tokens: { "*": token } });
    const tricky = ["$(touch pwned)", "; echo no", "\"quoted\" 'single'", "*"];
    await runTokenCommand(command({ args: tricky }));
    expect((await tool.calls()).at(-1)?.argv).toEqual(tricky);
  });

  it("uses the given environment, not the process environment", async () => {
    await tool.plan({ tokens: { "*": token } });
    await runTokenCommand(command({ env: { PATH: pathWith(dir), MARKER: "from-context" } }));
    expect((await tool.calls()).at(-1)?.env.MARKER).toBe("from-context");
  });

  it("closes stdin, so a program that reads its input does not hang", async () => {
    await tool.plan({ tokens: { "*": token }, waitForStdin: true });
    expect(fp(await runTokenCommand(command({ timeoutMs: 3000 })))).toBe(fp(token));
  });

  it("takes the last non-empty line when the program prints more than the token", async () => {
    await tool.plan({ stdout: `notice: a newer version is available\n\n${token}\n\n` });
    expect(fp(await runTokenCommand(command()))).toBe(fp(token));
  });

  it("a missing program is unavailable, with the fix the caller gave", async () => {
    const err = (await rejectionOf(runTokenCommand(command({ program: "no-such-program-here" })))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toBe('opencode-ci-auth: provider "miaou": exec subject token: mint-token is not installed.');
    expect(err.transient).toBe(false);
  });

  it("a program that is not executable is unavailable (EACCES)", async () => {
    const path = join(dir, "not-executable");
    await writeFile(path, "#!/bin/sh\necho x\n");
    await chmod(path, 0o644);
    const err = (await rejectionOf(runTokenCommand(command({ program: path })))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(`exec subject token: ${path} is not executable by this user (EACCES).`);
  });

  it("a non-zero exit quotes stderr, scrubbed, and never stdout", async () => {
    await tool.plan({ stdout: `${token}\n`, stderr: `error: not allowed for ${token}\n  see the docs`, exitCode: 3 });
    const err = (await rejectionOf(runTokenCommand(command({ failureHint: "Check the switch." })))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.reason).toBe(
      "exec subject token: `mint-token` exited with code 3: error: not allowed for [redacted] see the docs. Check the switch.",
    );
    expect(err.transient).toBe(false);
    expect(err.summary).toBe("exit code 3");
    expectNoToken(err);
  });

  it("a non-zero exit whose stderr says the service failed is transient", async () => {
    for (const stderr of [
      "POST https://agent.example/oidc/tokens: 503 Service Unavailable",
      "dial tcp: i/o timeout",
      "read: connection reset by peer",
    ]) {
      await tool.plan({ stderr, exitCode: 1 });
      const err = (await rejectionOf(runTokenCommand(command()))) as CiAuthError;
      expect(err.transient, stderr).toBe(true);
    }
  });

  it("an exit without stderr says so; a success that prints nothing is an error too", async () => {
    await tool.plan({ stdout: "", exitCode: 2 });
    expect(((await rejectionOf(runTokenCommand(command()))) as CiAuthError).reason).toBe(
      "exec subject token: `mint-token` exited with code 2 and printed nothing on stderr.",
    );
    await tool.plan({ stdout: "  \n", stderr: "no token for you" });
    expect(((await rejectionOf(runTokenCommand(command()))) as CiAuthError).reason).toBe(
      "exec subject token: `mint-token` printed no token (stderr: no token for you).",
    );
  });

  it("stops a program that runs past the time limit (transient), even one that sleeps", async () => {
    await tool.plan({ tokens: { "*": token }, sleepMs: 30_000 });
    const started = Date.now();
    const err = (await rejectionOf(runTokenCommand(command({ timeoutMs: 300 })))) as CiAuthError;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.reason).toBe("exec subject token: `mint-token` did not finish within 0.3s and was stopped.");
    expect(err.transient).toBe(true);
  });

  it("returns within the time limit even when a grandchild keeps the output pipes open", async () => {
    await tool.plan({ tokens: { "*": token }, grandchildMs: 4000 });
    const started = Date.now();
    const err = (await rejectionOf(runTokenCommand(command({ timeoutMs: 500 })))) as CiAuthError;
    expect(Date.now() - started).toBeLessThan(2500);
    expect(err.reason).toMatch(/did not finish within 0\.5s/);
  });

  it(`refuses more than ${MAX_COMMAND_OUTPUT_BYTES / 1024} KiB of output`, async () => {
    await tool.plan({ stdout: "x".repeat(MAX_COMMAND_OUTPUT_BYTES + 10) });
    const err = (await rejectionOf(runTokenCommand(command()))) as CiAuthError;
    expect(err.reason).toBe("exec subject token: `mint-token` printed more than 64 KiB, which is not a token.");
  });
});
