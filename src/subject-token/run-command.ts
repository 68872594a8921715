/**
 * Runs a program that prints a subject token (a CI platform's CLI, or the opt-in `exec` source): no shell, stdin
 * closed, a hard time limit (SIGKILL, then the run is abandoned even if a grandchild keeps the pipes open), and
 * bounded output. The token is the last non-empty line of stdout. stdout never appears in a message; stderr does,
 * scrubbed and shortened, because it is where a CLI says why it failed.
 */
import { SubjectTokenRequestError, SubjectTokenUnavailableError } from "../errors.js";
import { scrub } from "../log.js";

export interface TokenCommand {
  source: string;
  providerId: string;
  program: string;
  args: readonly string[];
  /** How the command is named in messages, e.g. "`buildkite-agent oidc request-token`". */
  label: string;
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
  /** The fix when the program cannot be found on PATH (ENOENT). */
  notFound: string;
  /** Appended to the message when the program fails (exits non-zero, prints nothing). */
  failureHint?: string | undefined;
}

/** More than any JWT; a program that prints more is not printing a token. */
export const MAX_COMMAND_OUTPUT_BYTES = 64 * 1024;
const STDERR_SHOWN = 300;

/** Words a CLI prints when the service behind it failed or was unreachable: worth another attempt. */
const TRANSIENT_STDERR =
  /\b(?:408|429|50[0-9])\b|timed? ?out|temporar(?:y|ily)|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|connection (?:reset|refused)|service unavailable|bad gateway/i;

const shown = (stderr: string): string => {
  const text = scrub(stderr).replace(/\s+/g, " ").trim();
  return text.length > STDERR_SHOWN ? `${text.slice(0, STDERR_SHOWN)}…` : text;
};

export async function runTokenCommand(cmd: TokenCommand): Promise<string> {
  // Loaded here, not at import: only the sources that run a program need it, and the plugin's import stays lighter.
  const { execFile } = await import("node:child_process");
  const { source, providerId, label } = cmd;
  const hint = cmd.failureHint ? ` ${cmd.failureHint}` : "";
  return new Promise<string>((resolve, reject) => {
    let done = false;
    const finish = (outcome: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      outcome();
    };
    const child = execFile(
      cmd.program,
      [...cmd.args],
      { env: cmd.env, encoding: "utf8", maxBuffer: MAX_COMMAND_OUTPUT_BYTES, windowsHide: true, shell: false },
      (err, stdout, stderr) =>
        finish(() => {
          if (!err) {
            const token = stdout
              .split(/\r?\n/)
              .map((l) => l.trim())
              .filter((l) => l.length > 0)
              .at(-1);
            if (token) return resolve(token);
            return reject(
              new SubjectTokenRequestError(
                source,
                `${label} printed no token${stderr.trim() ? ` (stderr: ${shown(stderr)})` : ""}.${hint}`,
                { providerId },
              ),
            );
          }
          const code = (err as NodeJS.ErrnoException).code as unknown;
          if (code === "ENOENT") return reject(new SubjectTokenUnavailableError(source, cmd.notFound, { providerId, cause: err }));
          if (code === "EACCES")
            return reject(
              new SubjectTokenUnavailableError(source, `${cmd.program} is not executable by this user (EACCES).`, {
                providerId,
                cause: err,
              }),
            );
          if (code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
            return reject(
              new SubjectTokenRequestError(
                source,
                `${label} printed more than ${MAX_COMMAND_OUTPUT_BYTES / 1024} KiB, which is not a token.`,
                { providerId },
              ),
            );
          }
          if (typeof code === "number") {
            const said = stderr.trim() ? `: ${shown(stderr)}` : " and printed nothing on stderr";
            const transient = TRANSIENT_STDERR.test(stderr);
            return reject(
              new SubjectTokenRequestError(source, `${label} exited with code ${code}${said}.${hint}`, {
                providerId,
                transient,
                summary: `exit code ${code}`,
              }),
            );
          }
          const signal = (err as { signal?: unknown }).signal;
          if (typeof signal === "string")
            return reject(
              new SubjectTokenRequestError(source, `${label} was killed by ${signal}.`, {
                providerId,
                transient: true,
                summary: `killed by ${signal}`,
              }),
            );
          return reject(
            new SubjectTokenUnavailableError(source, `${label} could not be started (${typeof code === "string" ? code : err.name}).`, {
              providerId,
              cause: err,
            }),
          );
        }),
    );
    // Nothing to read: a program waiting for input sees end-of-file at once instead of hanging until the time limit.
    child.stdin?.end();
    const abandon = () => {
      child.kill("SIGKILL");
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const timer = setTimeout(
      () =>
        finish(() => {
          abandon();
          const seconds = cmd.timeoutMs / 1000;
          reject(
            new SubjectTokenRequestError(source, `${label} did not finish within ${seconds}s and was stopped.`, {
              providerId,
              transient: true,
              summary: `no answer within ${seconds}s`,
            }),
          );
        }),
      cmd.timeoutMs,
    );
  });
}
