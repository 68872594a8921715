/**
 * Safe words for a failure: what a log line or a message may say about an error without quoting its payload,
 * which may hold a token.
 */
import { CiAuthError } from "./errors.js";

/** A short, secret-free description of an unknown failure: its class and code, never its payload. */
export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const causeCode = (err.cause as { code?: unknown } | undefined)?.code;
    const parts = [err.name];
    if (typeof code === "string") parts.push(code);
    if (typeof causeCode === "string" && causeCode !== code) parts.push(causeCode);
    return parts.join(" ");
  }
  return typeof err;
}

/** The text to log for a failure: a CiAuthError's reason, or a safe description of anything else. */
export function reasonOf(err: unknown): string {
  return err instanceof CiAuthError ? err.reason : `unexpected failure (${describeCause(err)})`;
}
