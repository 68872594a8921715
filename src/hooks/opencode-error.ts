/**
 * The boundary between our errors and opencode.
 *
 * opencode 1.18 retries a failed request up to 5 times (≈60 s) when the error message matches any of the
 * patterns below (copied from its session retry policy). Our final errors are final: the plugin already
 * decided. So the message is rewritten to match none of them, by putting an invisible WORD JOINER (U+2060)
 * inside each match. Terminals render the text unchanged; the regexes no longer match.
 */
import { CiAuthError } from "../errors.js";
import { describeCause } from "../describe-failure.js";

/** opencode 1.18.33 `SessionRetry` patterns, plus the two substrings it checks on unknown errors. */
export const OPENCODE_RETRY_PATTERNS: readonly RegExp[] = [
  /429|500|502|503|504|524/i,
  /rate increased too quickly|rate limit|rate-limit|rate_limit|too many requests/i,
  /overloaded|service unavailable|service_unavailable|service-unavailable|internal error|internal_error|internal server error|server error|server_error|server-error|provider returned error|provider_returned_error|provider-returned-error/i,
  /terminated|fetch failed|failed to fetch|network[-_\s]error|upstream connect|connection error|connection refused|connection lost|socket connection was closed|socket hang up|reset before headers|getaddrinfo|enotfound|eai_again|econnrefused|econnreset|etimedout/i,
  /^timeout$|\b(?:request|response|connection|network|stream|read) (?:timeout|timed out|time out)\b/i,
  /try your request again|retry your request|resource exhausted|resource_exhausted/i,
  /\btry again (?:later|in\b)|\b(?:currently|temporarily) at capacity\b/i,
  /too_many_requests|exhausted|unavailable/i,
];

const JOINER = "\u2060";
/** The `name` of errors handed to opencode, so our own code can tell them from foreign failures. */
export const OPENCODE_ERROR_NAME = "OpencodeCiAuthError";

export function looksRetryable(message: string): boolean {
  return OPENCODE_RETRY_PATTERNS.some((p) => p.test(message));
}

/** Break every retry-triggering match with an invisible joiner, until none matches. */
export function retrySafe(message: string): string {
  let out = message;
  for (let guard = 0; guard < 200 && looksRetryable(out); guard++) {
    for (const pattern of OPENCODE_RETRY_PATTERNS) {
      const match = pattern.exec(out);
      if (!match || match[0].length === 0) continue;
      const at = match.index + Math.min(1, match[0].length - 1);
      out = out.slice(0, at) + JOINER + out.slice(at);
    }
  }
  return out;
}

/** The error opencode shows the user: our message (or a safe description of an unexpected failure), retry-safe. */
export function toOpencodeError(err: unknown, providerId: string): Error {
  const message =
    err instanceof CiAuthError
      ? err.message
      : `opencode-ci-auth: provider "${providerId}": unexpected failure (${describeCause(err)}). Please report it.`;
  const out = new Error(retrySafe(message));
  out.name = OPENCODE_ERROR_NAME;
  return out;
}
