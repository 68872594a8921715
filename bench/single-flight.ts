/**
 * Figure 2: how many grants 100 concurrent `getToken()` calls cause when the cached token is due (must be 1).
 *
 * The library's TokenProvider runs against the loopback IdP with an injected clock. One grant fills the cache; the
 * clock then moves (a) past the token's expiry and (b) into the next token's refresh window, where it is still
 * valid. Each time 100 callers ask at once. Once the burst has settled (callers answered, and any refresh the burst
 * started has finished, whether callers waited for it or were served the current token meanwhile), the grants are
 * counted twice: attempts made by the TokenProvider and requests recorded by the IdP.
 *
 * The IdP issues 60 s tokens here so the moved clock stays inside the CI token's own 5 min lifetime, which the
 * plugin checks locally with the same clock.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { refreshAt } from "../src/cache/token-cache.js";
import type { World } from "../test/support/world.js";
import type { LibModule } from "./built-package.js";
import { PROVIDER_ID, parsedOAuth2Config } from "./provider-config.js";

const TOKEN_TTL_SECONDS = 60;
/** Real time allowed for a burst's refresh to finish before it is counted. */
const SETTLE_TIMEOUT_MS = 5_000;

type TokenProvider = ReturnType<LibModule["createTokenProvider"]>;

export interface BurstResult {
  /** Where the clock was put, relative to the cached token. */
  moment: "past_expiry" | "refresh_window";
  callers: number;
  /** Grants the TokenProvider attempted because of the burst. */
  grantAttempts: number;
  /** Token endpoint requests the IdP recorded because of the burst. */
  idpGrants: number;
  /** Which token the callers got: the one issued by the burst's grant, or the still-valid current one. */
  callersGot: "new_token" | "current_token" | "mixed_or_invalid";
  /** After the burst, the cache holds a new token that needs no refresh. */
  replaced: boolean;
  pass: boolean;
}

/** Waits (in real time) until the cache holds a fresh token and every grant attempted so far has reached the IdP. */
async function settle(tokens: TokenProvider, world: World, attempts: () => number, idpBefore: number): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const recorded = world.idp.grants.length - idpBefore;
    if (tokens.peek() !== undefined && recorded >= attempts()) return;
    await sleep(5);
  }
}

export async function measureSingleFlight(
  lib: LibModule,
  world: World,
  callers: number,
  restoreTtlSeconds: number,
): Promise<BurstResult[]> {
  let clock = Date.now();
  // Grant attempts, counted where they leave the TokenProvider: the POSTs to the token endpoint.
  let posts = 0;
  const counting = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    if ((init?.method ?? "GET").toUpperCase() === "POST") posts += 1;
    return fetch(input, init);
  }) as typeof fetch;
  const tokens = lib.createTokenProvider(PROVIDER_ID, parsedOAuth2Config(lib, world), {
    now: () => clock,
    fetch: counting,
    logger: lib.createLogger({ level: "silent" }),
  });
  world.idp.setAccessTokenTtl(TOKEN_TTL_SECONDS);
  try {
    let cached = await tokens.getToken();
    const results: BurstResult[] = [];
    const moments = [
      { moment: "past_expiry", at: (t: typeof cached) => t.expiresAt + 1 },
      { moment: "refresh_window", at: (t: typeof cached) => refreshAt(t) + 1 },
    ] as const;
    for (const { moment, at } of moments) {
      clock = at(cached);
      if (tokens.peek() !== undefined) throw new Error(`the token is still served from cache at ${moment}`);
      const attemptsBefore = posts;
      const idpBefore = world.idp.grants.length;
      const got = await Promise.all(Array.from({ length: callers }, () => tokens.getToken()));
      await settle(tokens, world, () => posts - attemptsBefore, idpBefore);
      const grantAttempts = posts - attemptsBefore;
      const idpGrants = world.idp.grants.length - idpBefore;

      const next = tokens.peek();
      const replaced = next !== undefined && next.value !== cached.value;
      const first = got[0];
      const allSame = first !== undefined && first.expiresAt > clock && got.every((t) => t.value === first.value);
      const callersGot = !allSame ? "mixed_or_invalid" : first.value === cached.value ? "current_token" : "new_token";
      // Past expiry nobody may get the old token; inside the window either answer is valid.
      const callersOk = callersGot === "new_token" || (callersGot === "current_token" && moment === "refresh_window");
      results.push({
        moment,
        callers,
        grantAttempts,
        idpGrants,
        callersGot,
        replaced,
        pass: grantAttempts === 1 && idpGrants === 1 && replaced && callersOk,
      });
      if (next) cached = next;
    }
    return results;
  } finally {
    world.idp.setAccessTokenTtl(restoreTtlSeconds);
  }
}
