/**
 * Retries for transient failures: jittered exponential backoff inside a bounded total time.
 *
 * Only errors marked `transient` (network, timeout, HTTP 408/429/5xx, OAuth `server_error` /
 * `temporarily_unavailable`) are retried; refusals and bad answers are final at once. A server's Retry-After is
 * honoured when it fits the remaining budget. A new attempt starts only if its wait ends inside the budget; that
 * attempt may then run its own timeout, so the worst case is the budget plus one timeout. When the budget runs
 * out, the final error lists every attempt.
 */
import { DEFAULT_RETRY } from "./config/defaults.js";
import { CiAuthError, RetriesExhaustedError } from "./errors.js";

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Budget for all attempts and waits together, from the first attempt. */
  maxElapsedMs: number;
  /** The first backoff's upper bound; it doubles per attempt ("full jitter": the wait is random below it). */
  baseDelayMs: number;
  /** Cap on any one computed backoff (a server's Retry-After is honoured as is, within the budget). */
  maxDelayMs: number;
}

/** The config's defaults (config/defaults.ts), plus the backoff tuning, which is not configurable. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: DEFAULT_RETRY.maxAttempts,
  maxElapsedMs: DEFAULT_RETRY.maxElapsedSeconds * 1000,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
};

export interface RetryDeps {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** [0, 1), for the jitter. */
  random?: () => number;
  /** Told before each wait: the failure, the attempt that failed, and the wait. */
  onRetry?: (error: CiAuthError, attempt: number, delayMs: number) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The wait before attempt `attempt + 1`: random in [0, min(cap, base·2^(attempt−1))], or exactly the server's
 * Retry-After (asking again sooner would only be refused again; the budget decides whether we wait that long).
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  return Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)));
}

/**
 * Run `operation` until it succeeds, fails for good, or the budget is spent. `startedAt` lets several steps
 * (subject token, discovery, grant) share one budget.
 */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  deps: RetryDeps = {},
  startedAt?: number,
): Promise<T> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const random = deps.random ?? Math.random;
  const start = startedAt ?? now();
  const attempts: string[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      if (!(err instanceof CiAuthError) || !err.transient) throw err;
      attempts.push(err.summary);
      const elapsed = now() - start;
      // With retries disabled there is nothing to report beyond the failure itself.
      if (policy.maxAttempts <= 1) throw err;
      if (attempt >= policy.maxAttempts)
        throw new RetriesExhaustedError(err, attempts, elapsed, `retry.maxAttempts is ${policy.maxAttempts}`);
      const delay = backoffDelay(attempt, policy, random, err.retryAfterMs);
      if (elapsed + delay > policy.maxElapsedMs) {
        const why =
          err.retryAfterMs !== undefined && elapsed + err.retryAfterMs > policy.maxElapsedMs
            ? `the server asked to wait ${Math.ceil(err.retryAfterMs / 1000)}s, beyond the retry budget of ${policy.maxElapsedMs / 1000}s`
            : `retry budget of ${policy.maxElapsedMs / 1000}s spent`;
        throw new RetriesExhaustedError(err, attempts, elapsed, why);
      }
      deps.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
