/**
 * src/retry.ts: which failures are retried, how long it waits, when it gives up, and what the final error says.
 * A fake clock and sleep make every wait observable without real time passing.
 */
import { describe, expect, it } from "vitest";
import { CiAuthError, GrantRefusedError, RetriesExhaustedError, SubjectTokenRequestError } from "../src/errors.js";
import { parseRetryAfter, isTransientStatus } from "../src/http/status.js";
import { DEFAULT_RETRY_POLICY, backoffDelay, withRetry, type RetryPolicy } from "../src/retry.js";

const policy: RetryPolicy = { maxAttempts: 4, maxElapsedMs: 30_000, baseDelayMs: 500, maxDelayMs: 8_000 };

/** A clock that only moves when the code under test sleeps. */
function fakeTime() {
  let now = 1_000_000;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
    advance: (ms: number) => (now += ms),
  };
}

const transient = (summary: string, retryAfterMs?: number) =>
  new SubjectTokenRequestError("github_actions", `the GitHub token service answered ${summary}`, {
    providerId: "miaou",
    transient: true,
    summary,
    retryAfterMs,
  });

/** An operation that fails with the given errors in turn, then succeeds. */
function flaky(errors: Error[], result = "ok") {
  let calls = 0;
  const op = async (attempt: number) => {
    calls += 1;
    expect(attempt).toBe(calls);
    const err = errors[calls - 1];
    if (err) throw err;
    return result;
  };
  return { op, calls: () => calls };
}

describe("backoffDelay (full jitter)", () => {
  it("stays below min(cap, base·2^(attempt−1)) and reaches it only as random → 1", () => {
    for (const [attempt, bound] of [
      [1, 500],
      [2, 1000],
      [3, 2000],
      [4, 4000],
      [5, 8000],
      [6, 8000],
    ] as const) {
      expect(backoffDelay(attempt, policy, () => 0)).toBe(0);
      expect(backoffDelay(attempt, policy, () => 0.999999)).toBe(bound - 1);
      expect(backoffDelay(attempt, policy, () => 0.5)).toBe(bound / 2);
    }
  });

  it("uses the server's Retry-After instead, exactly (the budget decides whether to wait that long)", () => {
    expect(backoffDelay(1, policy, () => 0, 3_000)).toBe(3_000);
    expect(backoffDelay(1, policy, () => 0, 60_000)).toBe(60_000);
  });
});

describe("withRetry", () => {
  it("retries transient failures and returns the first success", async () => {
    const t = fakeTime();
    const { op, calls } = flaky([transient("HTTP 503"), transient("HTTP 502")]);
    const retried: number[] = [];
    await expect(withRetry(op, policy, { ...t, random: () => 0.5, onRetry: (_e, attempt) => retried.push(attempt) })).resolves.toBe("ok");
    expect(calls()).toBe(3);
    expect(t.waits).toEqual([250, 500]);
    expect(retried).toEqual([1, 2]);
  });

  it("never retries a failure that is not transient (an OAuth refusal), however early", async () => {
    const t = fakeTime();
    const refusal = new GrantRefusedError("jwt_bearer", "invalid_grant", "audience mismatch", { providerId: "miaou", status: 400 });
    const { op, calls } = flaky([refusal]);
    await expect(withRetry(op, policy, t)).rejects.toBe(refusal);
    expect(calls()).toBe(1);
    expect(t.waits).toEqual([]);
  });

  it("never retries foreign errors (bugs are not outages)", async () => {
    const t = fakeTime();
    const bug = new TypeError("x is not a function");
    const { op, calls } = flaky([bug]);
    await expect(withRetry(op, policy, t)).rejects.toBe(bug);
    expect(calls()).toBe(1);
  });

  it("gives up after maxAttempts, listing every attempt and why it stopped, keeping the last code and step", async () => {
    const t = fakeTime();
    const { op, calls } = flaky([transient("HTTP 503"), transient("HTTP 502"), transient("no answer within 10s"), transient("HTTP 504")]);
    const err = await withRetry(op, policy, { ...t, random: () => 0 }).catch((e: unknown) => e);
    expect(calls()).toBe(4);
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    const final = err as RetriesExhaustedError;
    expect(final).toMatchObject({ code: "ERR_SUBJECT_TOKEN_REQUEST", step: "subject-token", providerId: "miaou" });
    expect(final.attempts).toEqual(["HTTP 503", "HTTP 502", "no answer within 10s", "HTTP 504"]);
    expect(final.message).toBe(
      'opencode-ci-auth: provider "miaou": github_actions subject token: the GitHub token service answered HTTP 504 Gave up after 4 attempts in 0.0s (retry.maxAttempts is 4): 1) HTTP 503; 2) HTTP 502; 3) no answer within 10s; 4) HTTP 504.',
    );
    expect(final.cause).toBeInstanceOf(CiAuthError);
  });

  it("stops when the next wait would pass the time budget, counting time spent in attempts", async () => {
    const t = fakeTime();
    const slow = async () => {
      t.advance(9_000); // each attempt takes 9 s (e.g. a timeout)
      throw transient("no answer within 9s");
    };
    const err = (await withRetry(slow, { ...policy, maxElapsedMs: 20_000 }, { ...t, random: () => 0.999 }).catch(
      (e: unknown) => e,
    )) as RetriesExhaustedError;
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    // 9 s, wait 0.5 s, 9 s (18.5 s), wait 1 s (19.5 s, inside), 9 s (28.5 s): the next wait would end past 20 s.
    // A started attempt runs its course, so the worst case is the budget plus one attempt.
    expect(err.attempts).toHaveLength(3);
    expect(t.waits).toEqual([499, 999]);
    expect(err.message).toContain("retry budget of 20s spent");
  });

  it("honours Retry-After, and gives up at once when the server asks for more than the budget left", async () => {
    const t = fakeTime();
    const { op } = flaky([transient("HTTP 429", 2_000)]);
    await expect(withRetry(op, policy, t)).resolves.toBe("ok");
    expect(t.waits).toEqual([2_000]);

    const t2 = fakeTime();
    const { op: op2, calls } = flaky([transient("HTTP 429", 45_000)]);
    const err = (await withRetry(op2, policy, { ...t2, random: () => 0 }).catch((e: unknown) => e)) as RetriesExhaustedError;
    expect(calls()).toBe(1);
    expect(t2.waits).toEqual([]);
    expect(err.message).toContain("the server asked to wait 45s, beyond the retry budget of 30s");
  });

  it("shares one budget across steps through startedAt", async () => {
    const t = fakeTime();
    const startedAt = t.now();
    t.advance(29_900); // earlier steps already used most of the budget
    const { op, calls } = flaky([transient("HTTP 503")]);
    const err = (await withRetry(op, policy, { ...t, random: () => 0.9 }, startedAt).catch((e: unknown) => e)) as RetriesExhaustedError;
    expect(calls()).toBe(1);
    expect(err.message).toContain("retry budget of 30s spent");
  });

  it("maxAttempts 1 means no retry at all: the failure itself is the error", async () => {
    const t = fakeTime();
    const failure = transient("HTTP 503");
    const { op, calls } = flaky([failure]);
    const err = await withRetry(op, { ...policy, maxAttempts: 1 }, t).catch((e: unknown) => e);
    expect(calls()).toBe(1);
    expect(err).toBe(failure);
  });

  it("has documented defaults: 4 attempts within 30 s, 0.5 s doubling to 8 s", () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({ maxAttempts: 4, maxElapsedMs: 30_000, baseDelayMs: 500, maxDelayMs: 8_000 });
  });
});

describe("parseRetryAfter and isTransientStatus", () => {
  it("reads delta-seconds and HTTP-dates, and ignores garbage", () => {
    const now = Date.parse("2026-11-22T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3_000);
    expect(parseRetryAfter("0", now)).toBe(0);
    expect(parseRetryAfter("Sun, 22 Nov 2026 00:00:05 GMT", now)).toBe(5_000);
    expect(parseRetryAfter("Sun, 21 Nov 2026 23:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-1", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it("treats 408, 429 and 5xx as transient, and other statuses as final", () => {
    for (const s of [408, 429, 500, 502, 503, 504, 599]) expect(isTransientStatus(s)).toBe(true);
    for (const s of [200, 301, 400, 401, 403, 404, 409, 422, undefined]) expect(isTransientStatus(s)).toBe(false);
  });
});
