/**
 * Holds one provider's access token and decides when to get a new one.
 *
 * - Refresh ahead: a token is renewed `min(30 s, lifetime / 4)` before it expires, so a 60 s token is still reused
 *   for 45 s and a 1 h token for 59.5 min.
 * - Single flight: concurrent callers share one pending grant. The slot is cleared only if it still holds the same
 *   promise, so a late settle never erases a newer grant.
 * - Refresh in the background: inside the refresh window the current token is served at once while one grant
 *   replaces it. If that grant fails, the current token is still served and the refresh is retried on the next
 *   call. An expired token is never served.
 * - Only the access token is kept; subject tokens never reach this module.
 */
import type { AccessToken } from "../access-token.js";

export const MAX_REFRESH_MARGIN_MS = 30_000;

/**
 * A token is never served in its last second: IdPs round their own expiry down to whole seconds (oidc-provider:
 * floor(now) + ttl), so ours, counted from the request, can be up to 1 s later than theirs. This matters only while
 * refreshes fail; otherwise the token was replaced long before.
 */
export const EXPIRY_GUARD_MS = 1000;

/** Whether `token` may still be sent at `now`. */
export function usable(token: Pick<AccessToken, "expiresAt">, now: number): boolean {
  return now < token.expiresAt - EXPIRY_GUARD_MS;
}

/** The moment a token should be replaced: the smaller of 30 s and a quarter of its lifetime before expiry. */
export function refreshAt(token: Pick<AccessToken, "issuedAt" | "expiresAt">): number {
  const lifetime = Math.max(0, token.expiresAt - token.issuedAt);
  return token.expiresAt - Math.min(MAX_REFRESH_MARGIN_MS, lifetime / 4);
}

export interface TokenCacheOptions {
  /** Runs one grant. Called at most once at a time. */
  fetchToken: () => Promise<AccessToken>;
  now?: () => number;
  /** Told when a background refresh failed while the current token is still valid. */
  onStaleServed?: (error: unknown, token: AccessToken) => void;
}

export class TokenCache {
  readonly #fetchToken: () => Promise<AccessToken>;
  readonly #now: () => number;
  readonly #onStaleServed: ((error: unknown, token: AccessToken) => void) | undefined;
  #current: AccessToken | undefined;
  #pending: Promise<AccessToken> | undefined;

  constructor(options: TokenCacheOptions) {
    this.#fetchToken = options.fetchToken;
    this.#now = options.now ?? Date.now;
    this.#onStaleServed = options.onStaleServed;
  }

  /** The cached token when it needs no refresh; synchronous so the hot path costs no promise. */
  peek(): AccessToken | undefined {
    const token = this.#current;
    return token !== undefined && this.#now() < refreshAt(token) ? token : undefined;
  }

  /**
   * A token valid now. Fresh: the cached one. Inside the refresh window: still the cached one, at once, while a
   * background grant replaces it (a slow or failing IdP never delays a request while a valid token exists).
   * Expired or absent: wait for the (shared) grant.
   */
  async get(): Promise<AccessToken> {
    const current = this.#current;
    const now = this.#now();
    if (current !== undefined && usable(current, now)) {
      if (now >= refreshAt(current) && !this.#pending) {
        this.#refresh().catch((err: unknown) => {
          // Tried again on the next call; the current token is served until it expires.
          if (this.#current === current && usable(current, this.#now())) this.#onStaleServed?.(err, current);
        });
      }
      return current;
    }
    return this.#refresh();
  }

  /**
   * Drop the token the provider rejected (HTTP 401). A different, newer token is kept: another caller
   * already replaced the rejected one.
   */
  invalidate(rejectedValue: string): void {
    if (this.#current?.value === rejectedValue) this.#current = undefined;
  }

  #refresh(): Promise<AccessToken> {
    if (this.#pending) return this.#pending;
    const pending: Promise<AccessToken> = this.#fetchToken().then(
      (token) => {
        if (this.#pending === pending) this.#pending = undefined;
        this.#current = token;
        return token;
      },
      (err: unknown) => {
        if (this.#pending === pending) this.#pending = undefined;
        throw err;
      },
    );
    this.#pending = pending;
    return pending;
  }
}
