/**
 * The one interface every CI platform implements: produce the job's OIDC token, fresh, on demand.
 * A source never caches or stores the token; the caller checks it (claims.ts) and uses it once.
 */
import { createHash } from "node:crypto";

export interface SubjectTokenContext {
  /** Provider id, for error messages. */
  providerId: string;
  env: NodeJS.ProcessEnv;
  fetch: typeof globalThis.fetch;
  /** Per-request limit for sources that call a service or run a program (oauth2.timeoutSeconds), headers and body. */
  timeoutMs: number;
}

export interface SubjectTokenSource {
  /** The config `type`, e.g. `github_actions`; names the source in messages and logs. */
  readonly type: string;
  /** The `aud` the token must carry, when the config states it; checked locally before any grant. */
  readonly expectedAudience: string | undefined;
  /**
   * The environment variables that hold this source's credentials (a token, or what mints one). The plugin blanks
   * them in the agent's shell and redacts their values in tool output (src/agent/).
   */
  readonly credentialEnv: readonly string[];
  /** Mint or read a fresh token. Throws a SubjectToken*Error that says how to fix the job. */
  getSubjectToken(context: SubjectTokenContext): Promise<string>;
  /**
   * A non-secret string equal for two processes only if they act for the same job with the same settings, so a
   * token cached on disk never crosses jobs (see TokenCacheKeyInput in cache/file-key.ts); undefined when this
   * environment cannot tell jobs apart, which disables the file cache.
   */
  cacheIdentity(context: SubjectTokenContext): Promise<string | undefined>;
}

/** A one-way fingerprint of a credential, to bind a cache identity to it without storing it. */
export function fingerprint(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** JSON of the parts, or undefined when any is missing: a weaker identity must never be built silently. */
export function identityOf(parts: ReadonlyArray<string | undefined>): string | undefined {
  return parts.every((p) => p !== undefined && p !== "") ? JSON.stringify(parts) : undefined;
}

/**
 * The identity of a source whose token is stable for a job (a variable, a file): its type and settings plus a
 * fingerprint of the token it holds now, since the same token means the same job. Undefined when it holds none.
 */
export async function tokenBoundIdentity(
  source: SubjectTokenSource,
  context: SubjectTokenContext,
  settings: readonly string[],
): Promise<string | undefined> {
  const token = await source.getSubjectToken(context).catch(() => undefined);
  return identityOf([source.type, ...settings, source.expectedAudience ?? "(none)", token ? fingerprint(token) : undefined]);
}
