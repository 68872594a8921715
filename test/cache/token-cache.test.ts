/**
 * src/cache/token-cache.ts with a fake clock (a mutable `now`, no timers) and a counting fetchToken whose tokens are
 * built like requestAccessToken builds them (resolveExpiry from an expires_in). Deferred promises decide when a
 * grant settles, so every interleaving below is exact, not timing-dependent.
 *
 * Semantics under test (src/cache/token-cache.ts as of this writing): before refreshAt the cached token is served and
 * nothing is fetched; from refreshAt until expiry the cached token is still served at once while ONE background
 * grant replaces it (a failure there is reported through onStaleServed); at or after expiry callers wait for the
 * shared grant and see its error.
 */
import { beforeEach, describe, expect, it } from "vitest";

import { resolveExpiry } from "../../src/grant/grant.js";
import type { AccessToken } from "../../src/grant/grant.js";
import { EXPIRY_GUARD_MS, MAX_REFRESH_MARGIN_MS, TokenCache, refreshAt } from "../../src/cache/token-cache.js";

const T0 = 1_750_000_000_000;
let now: number;

beforeEach(() => {
  now = T0;
});

/** The token an IdP would give now for `expires_in = lifetimeSeconds`. */
function issue(value: string, lifetimeSeconds: number): AccessToken {
  return {
    value,
    tokenType: "Bearer",
    issuedAt: now,
    ...resolveExpiry({ access_token: value, expires_in: lifetimeSeconds }, now),
    scope: undefined,
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run (the cache's settle handlers and the callers' continuations). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A fetchToken that counts calls, and how many are still in flight (a grant the cache started and that has not
 * settled). By default each call issues `tok-<n>` immediately; `script` can make a call fail or hang on a
 * deferred instead.
 */
function counting(lifetimeSeconds = 60) {
  const script: Array<"ok" | Error | Deferred<AccessToken>> = [];
  const state = {
    calls: 0,
    inFlight: 0,
    script,
    fetchToken: async (): Promise<AccessToken> => {
      state.calls += 1;
      state.inFlight += 1;
      try {
        const step = script.shift() ?? "ok";
        if (step === "ok") return issue(`tok-${state.calls}`, lifetimeSeconds);
        if (step instanceof Error) throw step;
        return await step.promise;
      } finally {
        state.inFlight -= 1;
      }
    },
  };
  return state;
}

function cacheWith(source: ReturnType<typeof counting>, onStaleServed?: (error: unknown, token: AccessToken) => void): TokenCache {
  return new TokenCache({ fetchToken: source.fetchToken, now: () => now, ...(onStaleServed ? { onStaleServed } : {}) });
}

describe("refreshAt", () => {
  it("60 s token: refresh 15 s early (lifetime / 4), i.e. 45 s of reuse", () => {
    const t = issue("a", 60);
    expect(refreshAt(t)).toBe(T0 + 45_000);
  });

  it("3600 s token: refresh 30 s early (the cap)", () => {
    const t = issue("a", 3600);
    expect(MAX_REFRESH_MARGIN_MS).toBe(30_000);
    expect(refreshAt(t)).toBe(T0 + 3_570_000);
  });

  it("120 s is where both rules meet (30 s either way)", () => {
    expect(refreshAt(issue("a", 120))).toBe(T0 + 90_000);
  });

  it("a token with no lifetime (or expiry before issue) is due at its expiry", () => {
    expect(refreshAt({ issuedAt: T0, expiresAt: T0 })).toBe(T0);
    expect(refreshAt({ issuedAt: T0, expiresAt: T0 - 5_000 })).toBe(T0 - 5_000);
  });
});

describe("reuse and the refresh boundary", () => {
  it("reuses the token until refreshAt without another grant", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const first = await cache.get();
    expect(first.value).toBe("tok-1");
    for (const t of [T0, T0 + 1, T0 + 10_000, T0 + 30_000, T0 + 44_999]) {
      now = t;
      expect(await cache.get()).toBe(first);
      expect(cache.peek()).toBe(first);
    }
    expect(source.calls).toBe(1);
  });

  it.each([
    [60, 45_000],
    [3600, 3_570_000],
  ])("%s s token: refreshAt-1 ms is served from cache with no grant; refreshAt starts exactly one grant", async (lifetime, reuseMs) => {
    const source = counting(lifetime);
    const cache = cacheWith(source);
    const first = await cache.get();
    const due = refreshAt(first);
    expect(due).toBe(T0 + reuseMs);

    now = due - 1;
    expect(cache.peek()).toBe(first);
    expect(await cache.get()).toBe(first);
    await flush();
    expect(source.calls).toBe(1);
    expect(source.inFlight).toBe(0);

    now = due;
    expect(cache.peek()).toBeUndefined();
    // Still valid: served at once, while the replacement is fetched in the background.
    expect(await cache.get()).toBe(first);
    expect(source.calls).toBe(2);
    await flush();
    const second = cache.peek();
    expect(second?.value).toBe("tok-2");
    expect(second?.issuedAt).toBe(due);
    expect(await cache.get()).toBe(second);
    expect(source.calls).toBe(2);
  });

  it("inside the refresh window a hanging grant never delays a caller, and is not duplicated", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const first = await cache.get();
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    now = refreshAt(first);
    const served = await Promise.all(Array.from({ length: 50 }, () => cache.get()));
    expect(served.every((t) => t === first)).toBe(true);
    expect(source.calls).toBe(2);
    expect(source.inFlight).toBe(1);

    now = first.expiresAt - EXPIRY_GUARD_MS - 1; // still valid, still served, still one grant
    expect(await cache.get()).toBe(first);
    expect(source.calls).toBe(2);

    slow.resolve(issue("tok-bg", 60));
    await flush();
    expect(source.inFlight).toBe(0);
    expect(cache.peek()?.value).toBe("tok-bg");
  });

  it("a caller arriving after expiry joins the background grant already in flight", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const first = await cache.get();
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    now = refreshAt(first);
    expect(await cache.get()).toBe(first);
    now = first.expiresAt;
    const waiting = cache.get();
    await flush();
    expect(source.calls).toBe(2);
    const next = issue("tok-late", 60);
    slow.resolve(next);
    expect(await waiting).toBe(next);
  });

  it("peek never starts a grant", () => {
    const source = counting();
    const cache = cacheWith(source);
    expect(cache.peek()).toBeUndefined();
    expect(source.inFlight).toBe(0);
    expect(source.calls).toBe(0);
  });
});

describe("single flight", () => {
  it("100 concurrent get() after expiry -> exactly one fetchToken, everyone gets the same token", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const old = await cache.get();
    now = old.expiresAt + 1;

    const slow = deferred<AccessToken>();
    source.script.push(slow);
    const all = Array.from({ length: 100 }, () => cache.get());
    await flush();
    expect(source.calls).toBe(2);
    expect(source.inFlight).toBe(1);

    slow.resolve(issue("tok-new", 60));
    const results = await Promise.all(all);
    expect(source.calls).toBe(2);
    expect(new Set(results).size).toBe(1);
    expect(results[0]?.value).toBe("tok-new");
    expect(source.inFlight).toBe(0);
    expect(cache.peek()).toBe(results[0]);
  });

  it("a failed grant rejects every waiter with that error; the slot is cleared and the next call retries", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    const waiters = Array.from({ length: 10 }, () =>
      cache.get().then(
        () => "resolved",
        (e: unknown) => e,
      ),
    );
    await flush();
    expect(source.calls).toBe(1);

    const failure = new Error("idp refused");
    slow.reject(failure);
    const outcomes = await Promise.all(waiters);
    expect(outcomes.every((o) => o === failure)).toBe(true);
    expect(source.inFlight).toBe(0);
    expect(cache.peek()).toBeUndefined();

    const next = await cache.get();
    expect(source.calls).toBe(2);
    expect(next.value).toBe("tok-2");
  });

  it("a slow first grant is never duplicated, and its late result is what gets installed", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    const early = cache.get();
    await flush();
    // Time passes while the grant hangs, far beyond any lifetime; more callers arrive, and nothing else is fetched.
    const late: Array<Promise<AccessToken>> = [];
    for (const step of [1_000, 60_000, 3_600_000]) {
      now = T0 + step;
      late.push(cache.get());
      await flush();
    }
    expect(source.calls).toBe(1);
    expect(source.inFlight).toBe(1);
    expect(cache.peek()).toBeUndefined();

    // It settles with a token issued "now" (as requestAccessToken stamps issuedAt after the answer).
    const token = issue("tok-slow", 60);
    slow.resolve(token);
    expect(await early).toBe(token);
    for (const p of late) expect(await p).toBe(token);
    expect(source.inFlight).toBe(0);
    expect(cache.peek()).toBe(token);

    // The next cycle is a separate grant whose result replaces it.
    now = refreshAt(token);
    expect(await cache.get()).toBe(token);
    await flush();
    expect(source.calls).toBe(2);
    const replacement = cache.peek();
    expect(replacement?.value).toBe("tok-2");
    expect(replacement).not.toBe(token);
  });

  it("fetchToken runs at most once at a time, across many refresh cycles", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let n = 0;
    const cache = new TokenCache({
      now: () => now,
      fetchToken: async () => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await flush();
        inFlight -= 1;
        n += 1;
        return issue(`cyc-${n}`, 60);
      },
    });
    for (let cycle = 0; cycle < 20; cycle++) {
      await Promise.all(Array.from({ length: 20 }, () => cache.get()));
      await flush(); // let a background refresh finish
      now += 61_000; // past the expiry of the token just issued: callers must wait for the next grant
    }
    expect(n).toBe(20);
    expect(maxInFlight).toBe(1);
  });
});

describe("stale on error", () => {
  it("early refresh fails while the token is valid -> current token served, onStaleServed told, retried next call", async () => {
    const source = counting(60);
    const stale: Array<{ error: unknown; token: AccessToken }> = [];
    const cache = cacheWith(source, (error, token) => stale.push({ error, token }));
    const first = await cache.get();

    now = refreshAt(first);
    const failure = new Error("idp down");
    source.script.push(failure);
    expect(await cache.get()).toBe(first);
    await flush();
    expect(source.calls).toBe(2);
    expect(stale).toEqual([{ error: failure, token: first }]);
    expect(source.inFlight).toBe(0);
    expect(cache.peek()).toBeUndefined();

    // Still inside the window: the next call serves the token again and retries (no cached failure); it works.
    now = first.expiresAt - EXPIRY_GUARD_MS - 1;
    expect(await cache.get()).toBe(first);
    await flush();
    expect(source.calls).toBe(3);
    expect(cache.peek()?.value).toBe("tok-3");
    expect(stale.length).toBe(1);
  });

  it("many callers during a failing early refresh: all get the valid token, one grant, one report", async () => {
    const source = counting(60);
    const stale: unknown[] = [];
    const cache = cacheWith(source, (error) => stale.push(error));
    const first = await cache.get();
    now = refreshAt(first) + 1;
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    const served = await Promise.all(Array.from({ length: 5 }, () => cache.get()));
    expect(served.every((t) => t === first)).toBe(true);
    const failure = new Error("timeout");
    slow.reject(failure);
    await flush();
    expect(source.calls).toBe(2);
    expect(stale).toEqual([failure]);
  });

  it("once the token has expired the error propagates (an expired token is never served)", async () => {
    const source = counting(60);
    const stale: unknown[] = [];
    const cache = cacheWith(source, (error) => stale.push(error));
    const first = await cache.get();

    for (const t of [first.expiresAt, first.expiresAt + 1, first.expiresAt + 3_600_000]) {
      now = t;
      const failure = new Error(`idp down at +${t - T0}`);
      source.script.push(failure);
      await expect(cache.get()).rejects.toBe(failure);
    }
    await flush();
    expect(stale).toEqual([]);
    expect(source.calls).toBe(4);
  });

  it("a background refresh that fails after the token expired reaches the waiters, not onStaleServed", async () => {
    const source = counting(60);
    const stale: unknown[] = [];
    const cache = cacheWith(source, (error) => stale.push(error));
    const first = await cache.get();
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    now = refreshAt(first);
    expect(await cache.get()).toBe(first);
    now = first.expiresAt + 1;
    const waiting = cache.get();
    const failure = new Error("idp down");
    slow.reject(failure);
    await expect(waiting).rejects.toBe(failure);
    await flush();
    expect(stale).toEqual([]);
  });

  it("a token invalidated while its refresh is failing is not served again", async () => {
    const source = counting(60);
    const stale: unknown[] = [];
    const cache = cacheWith(source, (error) => stale.push(error));
    const first = await cache.get();
    now = refreshAt(first);
    const slow = deferred<AccessToken>();
    source.script.push(slow);
    expect(await cache.get()).toBe(first); // starts the background refresh
    cache.invalidate(first.value); // the provider answered 401 for it meanwhile
    const waiting = cache.get(); // must wait for the grant, not get the rejected token
    const failure = new Error("idp down");
    slow.reject(failure);
    await expect(waiting).rejects.toBe(failure);
    await flush();
    expect(stale).toEqual([]);
    expect(cache.peek()).toBeUndefined();
  });
});

describe("invalidate(rejected)", () => {
  it("clears the current token only when it is the rejected one", async () => {
    const source = counting(3600);
    const cache = cacheWith(source);
    const first = await cache.get();

    cache.invalidate("some-other-token");
    expect(cache.peek()).toBe(first);
    expect(await cache.get()).toBe(first);
    expect(source.calls).toBe(1);

    cache.invalidate(first.value);
    expect(cache.peek()).toBeUndefined();
    const second = await cache.get();
    expect(source.calls).toBe(2);
    expect(second.value).toBe("tok-2");
  });

  it("a late 401 for an older token keeps the newer one", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const first = await cache.get();
    now = refreshAt(first);
    await cache.get();
    await flush();
    const second = cache.peek();
    expect(second?.value).toBe("tok-2");
    if (!second) throw new Error("no second token");

    cache.invalidate(first.value); // a request that still carried the first token came back 401
    expect(cache.peek()).toBe(second);
    expect(await cache.get()).toBe(second);
    expect(source.calls).toBe(2);
  });

  it("many concurrent 401s for the same token cause one new grant", async () => {
    const source = counting(3600);
    const cache = cacheWith(source);
    const first = await cache.get();
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        cache.invalidate(first.value);
        return cache.get();
      }),
    );
    expect(source.calls).toBe(2);
    expect(new Set(results.map((t) => t.value))).toEqual(new Set(["tok-2"]));
  });
});

describe("the expiry guard", () => {
  it("never serves a token in its last second, when the IdP may already have expired it", async () => {
    const source = counting(60);
    const cache = cacheWith(source);
    const first = await cache.get();
    const failure = new Error("idp down");
    // Last usable millisecond: still served (a background refresh is tried and fails).
    now = first.expiresAt - EXPIRY_GUARD_MS - 1;
    source.script.push(failure);
    expect(await cache.get()).toBe(first);
    await flush();
    // One millisecond later the token is treated as expired: the caller waits for a grant, here a failing one.
    now = first.expiresAt - EXPIRY_GUARD_MS;
    source.script.push(failure);
    await expect(cache.get()).rejects.toBe(failure);
  });
});
