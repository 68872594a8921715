/**
 * Runs a program that prints the token: for platforms and token brokers without a dedicated source. Off unless
 * the job's environment names the program in `OPENCODE_CI_AUTH_ALLOW_EXEC`: the config file (opencode.json,
 * plugin options included) lives in the repository, where a pull request can change it, so it can describe a
 * command but never allow one. The environment is set by the job definition, where commands run anyway.
 * @see https://google.aip.dev/auth/4117 (the same idea: "executable-sourced credentials", also off by default)
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { runTokenCommand } from "./run-command.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { DEFAULT_TIMEOUT_SECONDS } from "../config/defaults.js";
import { audience, text, timeoutSeconds } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "exec";
/** The switch: a comma-separated list of the programs (`command[0]`, exactly as written) the job allows. */
export const ALLOW_EXEC_ENV = "OPENCODE_CI_AUTH_ALLOW_EXEC";

/** The programs a job allows, from OPENCODE_CI_AUTH_ALLOW_EXEC. */
export function allowedPrograms(env: NodeJS.ProcessEnv): string[] {
  return (env[ALLOW_EXEC_ENV] ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

export class ExecSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** None in the environment: this source reads a file, a server or a program. */
  readonly credentialEnv: readonly string[] = [];
  readonly command: readonly [string, ...string[]];
  readonly timeoutMs: number;

  constructor(command: readonly [string, ...string[]], timeoutSeconds: number, audience: string | undefined) {
    this.command = command;
    this.timeoutMs = timeoutSeconds * 1000;
    this.expectedAudience = audience;
  }

  /** None: a command says nothing about which job runs it, so the file cache is not used with this source. */
  async cacheIdentity(): Promise<string | undefined> {
    return undefined;
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const [program, ...args] = this.command;
    const allowed = allowedPrograms(env);
    if (!allowed.includes(program)) {
      const now = allowed.length ? `it allows ${allowed.map((p) => `"${p}"`).join(", ")}, not "${program}"` : "it is not set";
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `refused to run "${program}": ${ALLOW_EXEC_ENV} must name it in the job's environment (${now}). ` +
          `A config file alone cannot allow a command, since a pull request can change it: set ${ALLOW_EXEC_ENV}=${program} in the CI job definition.`,
        { providerId },
      );
    }
    return runTokenCommand({
      source: SOURCE,
      providerId,
      program,
      args,
      label: `the command "${program}"`,
      timeoutMs: this.timeoutMs,
      env,
      notFound: `"${program}" was not found (ENOENT). Use an absolute path, or a program on the job's PATH.`,
    });
  }
}

export const exec = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** The program and its arguments, run without a shell. */
    command: z
      .array(text("command item"), { error: 'command must be an array such as ["/usr/local/bin/mint-token", "--audience", "…"]' })
      .check(z.minLength(1, { error: "command must name a program" })),
    /** Limit for the program to finish. */
    timeoutSeconds: timeoutSeconds("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS),
    audience,
  }),
  create: (config) => {
    const [program, ...args] = config.command;
    // The schema guarantees at least one item.
    return new ExecSource([program as string, ...args], config.timeoutSeconds, config.audience);
  },
  credentialEnv: [],
});
