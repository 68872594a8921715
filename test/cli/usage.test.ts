/**
 * The command line itself: --help and --version follow the usual conventions, and usage errors exit 2 with a
 * one-line reason on stderr and nothing on stdout. Exit codes are checked on the built command in a child process
 * (the number the shell sees); the help texts are read in-process through `main()`, which is what the bin calls.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { assertBuilt, createCliProject } from "../support/cli.js";
import type { CliProject } from "../support/cli.js";
import { REPO_ROOT } from "../support/opencode-cli.js";

/** Runs `main(argv)` in this process, capturing what it writes to stdout and stderr. */
async function inProcess(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const captured = { stdout: "", stderr: "" };
  const stdoutWrite = process.stdout.write;
  const stderrWrite = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => ((captured.stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((captured.stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv, env);
    return { code, ...captured };
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
  }
}

describe("--help and --version", () => {
  it("--help: a Usage line, the commands, the options, the exit codes; on stdout, exit 0", async () => {
    for (const argv of [["--help"], ["-h"], ["help"]]) {
      const run = await inProcess(argv);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe("");
      const lines = run.stdout.split("\n");
      expect(lines[0]).toBe("Usage: opencode-ci-auth <command> [options]");
      expect(lines).toContain("Commands:");
      expect(lines.some((l) => /^ {2}doctor {3}Check each provider's chain/.test(l))).toBe(true);
      expect(lines.some((l) => /^ {2}token {4}Print a fresh access token/.test(l))).toBe(true);
      expect(lines.some((l) => /^ {2}prepare {2}Install @opencode-ai\/plugin where opencode would install it/.test(l))).toBe(true);
      expect(lines).toContain("Options:");
      expect(lines.some((l) => /^ {2}-h, --help {5}Show help/.test(l))).toBe(true);
      expect(lines.some((l) => /^ {2}-V, --version {2}Show the version/.test(l))).toBe(true);
      expect(lines).toContain("Exit codes: 0 success, 1 a check or the token request failed, 2 usage error.");
    }
  });

  it("doctor --help: its Usage line, every option with its short form, where the config is looked for", async () => {
    const run = await inProcess(["doctor", "--help"]);
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe("Usage: opencode-ci-auth doctor [--provider ID] [--config PATH] [--json]");
    expect(lines).toContain("Options:");
    expect(lines.some((l) => /^ {2}-p, --provider ID +Check only this provider$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {2}-c, --config PATH +Use this opencode config file/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {6}--json +Print the report as JSON$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {2}-h, --help +Show this help$/.test(l))).toBe(true);
    expect(run.stdout).toContain("OPENCODE_CONFIG");
    expect(run.stdout).toContain("$GITHUB_STEP_SUMMARY");
    expect(lines).toContain("Exit codes: 0 every provider is ready, 1 a provider fails (or none is found), 2 usage error.");
    // The options in the help are the options the parser accepts.
    expect((await inProcess(["doctor", "-h"])).stdout).toBe(run.stdout);
  });

  it("token --help: --provider is required (no brackets), --github-output and masking are explained", async () => {
    const run = await inProcess(["token", "--help"]);
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe("Usage: opencode-ci-auth token --provider ID [--json] [--github-output NAME]");
    expect(lines.some((l) => /^ {2}-p, --provider ID +The provider \(required\)$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {6}--github-output NAME +Write the token to \$GITHUB_OUTPUT/.test(l))).toBe(true);
    expect(run.stdout).toContain("::add-mask:: on stderr");
    expect(lines).toContain("Exit codes: 0 the token was printed (or written), 1 it could not be obtained, 2 usage error.");
  });

  it("prepare --help: its Usage line, every option the parser takes, the dirs it prepares", async () => {
    const run = await inProcess(["prepare", "--help"]);
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe("Usage: opencode-ci-auth prepare [--opencode-version VERSION] [--cache-dir DIR] [--dir DIR]...");
    for (const option of ["--opencode-version VERSION", "--opencode PATH", "--cache-dir DIR", "--dir DIR"]) {
      expect(lines.some((l) => l.startsWith(`      ${option} `))).toBe(true);
    }
    expect(lines.some((l) => /^ {2}-h, --help +Show this help$/.test(l))).toBe(true);
    expect(run.stdout).toContain("--ignore-scripts");
    expect(run.stdout).toContain("OPENCODE_CONFIG_DIR");
    expect(lines).toContain("Exit codes: 0 the dirs are prepared, 1 a step failed (the message names it and the fix), 2 usage error.");
    expect((await inProcess(["prepare", "-h"])).stdout).toBe(run.stdout);
  });

  it("--version and -V print the package version", async () => {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(await inProcess(["--version"])).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    expect(await inProcess(["-V"])).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
  });

  it("no command: the help on stderr, exit 2", async () => {
    const run = await inProcess([]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.startsWith("Usage: opencode-ci-auth <command> [options]\n")).toBe(true);
  });
});

describe("usage errors: exit 2, the reason on stderr, nothing on stdout", () => {
  const usage = (reason: string) => `opencode-ci-auth: ${reason}\nRun 'opencode-ci-auth --help' for usage.\n`;

  it.each([
    { cmd: "doctor --bogus", reason: "Unknown option '--bogus'" },
    { cmd: "doctor extra", reason: "Unexpected argument 'extra'. This command does not take positional arguments" },
    { cmd: "doctor --provider", reason: "Option '-p, --provider <value>' argument missing" },
    { cmd: "doctor --json=yes", reason: "Option '--json' does not take an argument" },
    { cmd: "token", reason: "token: --provider ID is required" },
    { cmd: "token --json", reason: "token: --provider ID is required" },
    { cmd: "token --provider miaou --bogus", reason: "Unknown option '--bogus'" },
    { cmd: "frobnicate", reason: 'unknown command "frobnicate"' },
    { cmd: "prepare --bogus", reason: "Unknown option '--bogus'" },
    { cmd: "prepare extra", reason: "Unexpected argument 'extra'. This command does not take positional arguments" },
    { cmd: "prepare --cache-dir", reason: "Option '--cache-dir <value>' argument missing" },
  ])("opencode-ci-auth $cmd", async ({ cmd, reason }) => {
    expect(await inProcess(cmd.split(" "))).toEqual({ code: 2, stdout: "", stderr: usage(reason) });
  });
});

describe.concurrent("exit codes of the built command", () => {
  let project: CliProject;

  beforeAll(async () => {
    await assertBuilt();
    project = await createCliProject();
  });

  afterAll(async () => {
    await project?.dispose();
  });

  const cases = [
    { cmd: "doctor --bogus", code: 2, stream: "stderr", first: "opencode-ci-auth: Unknown option '--bogus'" },
    { cmd: "token", code: 2, stream: "stderr", first: "opencode-ci-auth: token: --provider ID is required" },
    { cmd: "frobnicate", code: 2, stream: "stderr", first: 'opencode-ci-auth: unknown command "frobnicate"' },
    { cmd: "", code: 2, stream: "stderr", first: "Usage: opencode-ci-auth <command> [options]" },
    { cmd: "--help", code: 0, stream: "stdout", first: "Usage: opencode-ci-auth <command> [options]" },
    // No config in the project: nothing to check is a failure, not a usage error.
    { cmd: "doctor", code: 1, stream: "stdout", first: "opencode-ci-auth doctor" },
  ] as const;

  for (const { cmd, code, stream, first } of cases) {
    it(`\`opencode-ci-auth ${cmd}\` exits ${code}`, async () => {
      const run = await project.run(cmd ? cmd.split(" ") : []);
      expect(run.code).toBe(code);
      expect(run[stream].split("\n")[0]).toBe(first);
      expect(run[stream === "stdout" ? "stderr" : "stdout"]).toBe("");
    });
  }
});
