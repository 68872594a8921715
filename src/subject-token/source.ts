/**
 * The one interface every CI platform implements: produce the job's OIDC token, fresh, on demand.
 * A source never caches or stores the token; the caller checks it (claims.ts) and uses it once.
 */

export interface SubjectTokenContext {
  /** Provider id, for error messages. */
  providerId: string;
  env: NodeJS.ProcessEnv;
  fetch: typeof globalThis.fetch;
  signal?: AbortSignal | undefined;
  /** Per-request limit for sources that call a service, covering headers and body. */
  timeoutMs?: number | undefined;
}

export interface SubjectTokenSource {
  /** The config `type`, e.g. `github_actions`; names the source in messages and logs. */
  readonly type: string;
  /** The `aud` the token must carry, when the config states it; checked locally before any grant. */
  readonly expectedAudience: string | undefined;
  /** Mint or read a fresh token. Throws a SubjectToken*Error that says how to fix the job. */
  getSubjectToken(context: SubjectTokenContext): Promise<string>;
}
