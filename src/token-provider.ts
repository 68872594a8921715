/**
 * One provider's whole chain: subject-token source → local checks → grant → cache.
 * This is what the hooks and the CLI use; it owns no opencode knowledge.
 */
import type { Configuration } from "openid-client";
import type { OAuth2Config } from "./config/types.js";
import { readAllowLists } from "./config/allow-lists.js";
import { RetriesExhaustedError, SubjectTokenClaimsError, type CiAuthError, type SubjectTokenInvalidError } from "./errors.js";
import { reasonOf } from "./describe-failure.js";
import { checkExpectedClaims, formatClaimTable } from "./expect-claims.js";
import type { AccessToken } from "./access-token.js";
import type * as GrantClientModule from "./grant/client.js";
import type * as GrantModule from "./grant/grant.js";
import type * as ImpersonationModule from "./grant/impersonation.js";
import { createLogger, type Logger } from "./log.js";
import { decodeSubjectToken, subjectTokenFacts, summarizeClaims } from "./subject-token/claims.js";
import { SUBJECT_TOKEN_RULES } from "./subject-token-rules.js";
import type { ClaimCheck } from "./expect-claims.js";
import { createSubjectTokenSource } from "./subject-token/sources.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./subject-token/source.js";
import { defaultCacheDir } from "./cache/cache-dir.js";
import { tokenCacheKey } from "./cache/file-key.js";
import { FileTokenCache } from "./cache/file-store.js";
import { DEFAULT_RETRY_POLICY, withRetry, type RetryDeps, type RetryPolicy } from "./retry.js";
import { TokenCache } from "./cache/token-cache.js";

export interface TokenProviderOptions {
  env?: NodeJS.ProcessEnv;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  logger?: Logger;
  /** Override the source built from the config (library users with their own platform). */
  source?: SubjectTokenSource;
  /** Directory of the `"cache": "file"` store; defaults to defaultCacheDir(env). */
  cacheDir?: string;
  /** Told of the tokens this provider obtains, so that they can be kept out of the agent's tool output. */
  witness?: TokenWitness;
  /** Backoff tuning and clock for retries (tests); attempts and budget come from the config's `retry`. */
  retry?: Partial<Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">> & Omit<RetryDeps, "onRetry" | "now">;
}

/** Told of what a TokenProvider obtains; src/agent/agent-secrets.ts implements it. */
export interface TokenWitness {
  /** An access token, from a grant or from the file cache. */
  accessToken(value: string): void;
  /** The `iss` of a subject token that passed the local checks. */
  subjectTokenIssuer(iss: string): void;
}

/**
 * The grant layer (openid-client, oauth4webapi, jose's key handling) is imported on the first grant, not with the
 * plugin: opencode's start then does not pay for it, and a run served from the file cache never loads it.
 */
let grantLayer: Promise<GrantLayer> | undefined;
interface GrantLayer {
  createGrantClient: typeof GrantClientModule.createGrantClient;
  requestAccessToken: typeof GrantModule.requestAccessToken;
  impersonateServiceAccount: typeof ImpersonationModule.impersonateServiceAccount;
}
function loadGrantLayer(): Promise<GrantLayer> {
  grantLayer ??= Promise.all([import("./grant/client.js"), import("./grant/grant.js"), import("./grant/impersonation.js")]).then(
    ([client, grant, impersonation]) => ({
      createGrantClient: client.createGrantClient,
      requestAccessToken: grant.requestAccessToken,
      impersonateServiceAccount: impersonation.impersonateServiceAccount,
    }),
  );
  return grantLayer;
}

/** A subject token with less validity left than this is replaced before a retry, so the IdP never sees it expire. */
export const SUBJECT_TOKEN_MIN_VALIDITY_MS = 60_000;

/**
 * A decoded JWT's claims. Spelled out rather than taken from jose, which the bundle hides: the published declarations
 * may not import it. jose's JWTPayload is assignable to it.
 */
export interface JwtClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  jti?: string;
  nbf?: number;
  exp?: number;
  iat?: number;
  [claim: string]: unknown;
}

/** What the rules say of one subject token; `problems` is empty when it may be sent. */
export interface SubjectTokenExamination {
  /** Undefined when the token is not a JWT. */
  payload?: JwtClaims;
  /** The non-secret summary (with `exp`), for logs and doctor. */
  claims?: Record<string, unknown>;
  expiresAt?: number | undefined;
  problems: CiAuthError[];
  /** One row per `expectClaims` entry, when the config has any. */
  claimChecks?: ClaimCheck[] | undefined;
}

interface CheckedSubject {
  token: string;
  claims: Record<string, unknown>;
  expiresAt: number | undefined;
}

export class TokenProvider {
  readonly providerId: string;
  readonly config: OAuth2Config;
  readonly source: SubjectTokenSource;
  readonly #env: NodeJS.ProcessEnv;
  readonly #fetch: typeof globalThis.fetch | undefined;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #cache: TokenCache;
  #client: Promise<Configuration> | undefined;
  #issued = 0;
  #lastFailure: string | undefined;
  readonly #fileCache: FileTokenCache | undefined;
  /** The last token the provider rejected: a file-cache hit equal to it is ignored, or a 401 would loop. */
  #rejected: string | undefined;
  readonly #retryPolicy: RetryPolicy;
  readonly #retryDeps: RetryDeps;
  /** Every plugin instance that shares this provider has its own witness (token-provider-pool.ts). */
  readonly #witnesses = new Set<TokenWitness>();

  constructor(providerId: string, config: OAuth2Config, options: TokenProviderOptions = {}) {
    this.providerId = providerId;
    this.config = config;
    this.source = options.source ?? createSubjectTokenSource(config.subjectTokenSource);
    this.#env = options.env ?? process.env;
    this.#fetch = options.fetch;
    this.#now = options.now ?? Date.now;
    if (options.witness) this.#witnesses.add(options.witness);
    this.#log = (options.logger ?? createLogger()).child({ provider: providerId });
    this.#fileCache =
      config.cache === "file"
        ? new FileTokenCache({ dir: options.cacheDir ?? defaultCacheDir(this.#env), now: this.#now, logger: this.#log })
        : undefined;
    const { baseDelayMs, maxDelayMs, ...retryDeps } = options.retry ?? {};
    this.#retryPolicy = {
      ...DEFAULT_RETRY_POLICY,
      ...(baseDelayMs === undefined ? {} : { baseDelayMs }),
      ...(maxDelayMs === undefined ? {} : { maxDelayMs }),
      maxAttempts: config.retry.maxAttempts,
      maxElapsedMs: config.retry.maxElapsedSeconds * 1000,
    };
    this.#retryDeps = {
      ...retryDeps,
      now: this.#now,
      onRetry: (err, attempt, delayMs) =>
        this.#log.warn(
          { event: "retrying", step: err.step, attempt, maxAttempts: this.#retryPolicy.maxAttempts, delayMs, code: err.code },
          `${err.step}: ${err.summary}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1} of ${this.#retryPolicy.maxAttempts})`,
        ),
    };
    this.#cache = new TokenCache({
      fetchToken: () => this.#grant(),
      now: this.#now,
      onStaleServed: (err, token) =>
        this.#log.warn(
          { event: "refresh_failed_serving_cached", code: (err as CiAuthError).code, expiresAt: new Date(token.expiresAt).toISOString() },
          `early refresh failed; the current token stays valid until it expires: ${reasonOf(err)}`,
        ),
    });
  }

  /** Tell one more witness of what this provider obtains, from now on and of the token it holds now. */
  addWitness(witness: TokenWitness): void {
    if (this.#witnesses.has(witness)) return;
    this.#witnesses.add(witness);
    const current = this.#cache.peek();
    if (current) witness.accessToken(current.value);
  }

  /** A valid access token: cached when fresh, else from one grant shared by all concurrent callers. */
  async getToken(): Promise<AccessToken> {
    return this.peek() ?? this.#cache.get();
  }

  /** The cached token if fresh, synchronously (the hot path); undefined when a grant is needed. */
  peek(): AccessToken | undefined {
    const cached = this.#cache.peek();
    // pino makes a disabled level a no-op, so this costs nothing unless trace is on.
    if (cached) this.#log.trace({ event: "token_served_from_cache" }, "token served from cache");
    return cached;
  }

  /** Forget a token the provider rejected, so the next getToken runs a new grant. */
  invalidate(rejectedValue: string): void {
    this.#rejected = rejectedValue;
    this.#cache.invalidate(rejectedValue);
  }

  #context(): SubjectTokenContext {
    return {
      providerId: this.providerId,
      env: this.#env,
      fetch: this.#fetch ?? globalThis.fetch,
      timeoutMs: this.config.timeoutSeconds * 1000,
    };
  }

  /** The file-cache key for this provider and job, or undefined (no file cache, or the job cannot be identified). */
  async #fileCacheKey(): Promise<string | undefined> {
    if (!this.#fileCache) return undefined;
    const identity = await this.source.cacheIdentity(this.#context());
    if (identity === undefined) {
      this.#log.warn(
        { event: "file_cache_disabled", source: this.source.type },
        "file cache skipped: this environment does not identify the job (see docs/configuration.md)",
      );
      return undefined;
    }
    const c = this.config;
    return tokenCacheKey({
      issuer: c.issuer,
      tokenEndpoint: c.tokenEndpoint,
      clientId: c.clientId ?? "(no client)",
      authFlow: c.authFlow,
      scopes: c.scopes,
      tokenExchangeAudience: c.tokenExchangeAudience,
      tokenExchangeResource: c.tokenExchangeResource,
      requestedTokenType: c.requestedTokenType,
      serviceAccountImpersonation: c.serviceAccountImpersonation && {
        email: c.serviceAccountImpersonation.email,
        scopes: c.serviceAccountImpersonation.scopes,
      },
      subjectTokenType: c.subjectTokenType,
      source: { type: this.source.type, identity },
    });
  }

  /**
   * The openid-client configuration, discovered once and shared; a failed discovery is retried next time.
   * @internal Not in the published declarations: its type is openid-client's, which the bundle hides.
   */
  client(): Promise<Configuration> {
    if (!this.#client) {
      const options = { fetch: this.#fetch, allowLists: readAllowLists(this.#env) };
      const pending = loadGrantLayer().then((layer) => layer.createGrantClient(this.providerId, this.config, options));
      this.#client = pending;
      pending.catch(() => {
        if (this.#client === pending) this.#client = undefined;
      });
    }
    return this.#client;
  }

  /**
   * Every rule's verdict on a subject token (SUBJECT_TOKEN_RULES, in order) and the `expectClaims` rows. Never
   * throws: a token that is not a JWT is reported as the only problem. The chain and doctor both judge with this.
   */
  examineSubjectToken(token: string): SubjectTokenExamination {
    const where = { source: this.source.type, providerId: this.providerId };
    let payload: JwtClaims;
    try {
      payload = decodeSubjectToken(token, where);
    } catch (err) {
      return { problems: [err as CiAuthError] };
    }
    const facts = subjectTokenFacts(payload, {
      ...where,
      expectedAudience: this.source.expectedAudience,
      now: this.#now(),
      env: this.#env,
    });
    const problems = SUBJECT_TOKEN_RULES.map((rule) => rule(facts)).filter((p): p is SubjectTokenInvalidError => p !== undefined);
    const claimChecks = this.config.expectClaims ? checkExpectedClaims(payload, this.config.expectClaims) : undefined;
    if (claimChecks?.some((c) => !c.ok))
      problems.push(new SubjectTokenClaimsError(this.source.type, formatClaimTable(claimChecks), { providerId: this.providerId }));
    return {
      payload,
      claims: summarizeClaims(payload),
      expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : undefined,
      problems,
      claimChecks,
    };
  }

  /** A fresh subject token from the source: its failures are thrown as they are (transient ones get retried). */
  mintSubjectToken(): Promise<string> {
    return this.source.getSubjectToken(this.#context());
  }

  /** Mint a subject token and check it, without a grant: the first problem is thrown. */
  async subjectToken(): Promise<CheckedSubject> {
    const token = await this.mintSubjectToken();
    const examined = this.examineSubjectToken(token);
    if (examined.claims)
      this.#log.info(
        { event: "subject_token_obtained", source: this.source.type, claims: examined.claims },
        `subject token obtained from ${this.source.type}`,
      );
    // Even a token that fails a check is this job's: its issuer's tokens are kept out of the agent's tool output.
    const iss = examined.payload?.iss;
    if (typeof iss === "string") for (const w of this.#witnesses) w.subjectTokenIssuer(iss);
    const [problem] = examined.problems;
    if (problem) throw problem;
    return { token, claims: examined.claims ?? {}, expiresAt: examined.expiresAt };
  }

  /** One grant with this subject token, without retries. `presented`: its non-secret claims, for refusal hints. */
  async requestWith(subjectToken: string, presented?: Record<string, unknown>): Promise<AccessToken> {
    const { requestAccessToken } = await loadGrantLayer();
    return requestAccessToken(await this.client(), this.config, subjectToken, { providerId: this.providerId, now: this.#now, presented });
  }

  /** The service account's token for a federated token (serviceAccountImpersonation), without retries. */
  async impersonate(federated: AccessToken, presented?: Record<string, unknown>): Promise<AccessToken> {
    const { impersonateServiceAccount } = await loadGrantLayer();
    const token = await impersonateServiceAccount(federated, this.config, {
      providerId: this.providerId,
      fetch: this.#fetch ?? globalThis.fetch,
      timeoutSeconds: this.config.timeoutSeconds,
      now: this.#now,
      subject: typeof presented?.sub === "string" ? presented.sub : undefined,
    });
    this.#log.debug(
      { event: "service_account_impersonated", serviceAccount: this.config.serviceAccountImpersonation?.email },
      "service account token obtained",
    );
    return token;
  }

  async #grant(): Promise<AccessToken> {
    const refreshing = this.#issued > 0;
    let claims: Record<string, unknown> | undefined;
    // One retry budget for the whole chain: subject token, discovery and grant together.
    const startedAt = this.#now();
    const retry = <T>(operation: (attempt: number) => Promise<T>) => withRetry(operation, this.#retryPolicy, this.#retryDeps, startedAt);
    try {
      // Another `opencode run` of this job may already hold a token: reuse it instead of a grant.
      const fileKey = await this.#fileCacheKey();
      const shared = fileKey ? await this.#fileCache?.read(fileKey) : undefined;
      if (shared && shared.value !== this.#rejected) {
        this.#issued += 1;
        for (const w of this.#witnesses) w.accessToken(shared.value);
        this.#log.info(
          { event: "token_from_file_cache", expiresAt: new Date(shared.expiresAt).toISOString() },
          "access token reused from the file cache",
        );
        return shared;
      }
      // Subject token first: a job-side problem (missing permission, expired token) is the more actionable error,
      // and it costs no request to the IdP. Fresh for every grant and dropped right after: never stored.
      let subject = await retry(() => this.subjectToken());
      claims = subject.claims;
      const configuration = await retry(() => this.client());
      const { requestAccessToken } = await loadGrantLayer();
      this.#log.debug(
        { event: "grant_started", flow: this.config.authFlow, tokenEndpoint: configuration.serverMetadata().token_endpoint },
        "grant started",
      );
      const granted = await retry(async (attempt) => {
        // A retry after long waits must not present a token about to expire: mint a new one.
        if (attempt > 1 && subject.expiresAt !== undefined && subject.expiresAt - this.#now() < SUBJECT_TOKEN_MIN_VALIDITY_MS) {
          subject = await this.subjectToken();
          claims = subject.claims;
        }
        return requestAccessToken(configuration, this.config, subject.token, {
          providerId: this.providerId,
          now: this.#now,
          presented: subject.claims,
        });
      });
      // Google: the federated token from STS buys the service account's token; only that one is kept.
      const accessToken = this.config.serviceAccountImpersonation ? await retry(() => this.impersonate(granted, subject.claims)) : granted;
      this.#issued += 1;
      for (const w of this.#witnesses) w.accessToken(accessToken.value);
      this.#lastFailure = undefined;
      if (fileKey) await this.#fileCache?.write(fileKey, accessToken);
      this.#log.info(
        {
          event: refreshing ? "token_refreshed" : "grant_succeeded",
          flow: this.config.authFlow,
          expiresAt: new Date(accessToken.expiresAt).toISOString(),
          expirySource: accessToken.expirySource,
          scope: accessToken.scope,
        },
        "access token issued",
      );
      return accessToken;
    } catch (err) {
      const reason = reasonOf(err);
      // The same failure repeats for every request of a run (discovery, answer, title): say it once at error level.
      // Compared on the underlying failure, not on the retry summary (which holds the elapsed time).
      const key = reasonOf(err instanceof RetriesExhaustedError ? err.cause : err);
      const level = key === this.#lastFailure ? "debug" : "error";
      this.#lastFailure = key;
      // On a refusal, the claims the IdP judged are what the user needs to fix the trust policy; they are not secret.
      this.#log[level](
        { event: "grant_failed", flow: this.config.authFlow, code: (err as CiAuthError).code, ...(claims ? { claims } : {}) },
        reason,
      );
      throw err;
    }
  }
}

export function createTokenProvider(providerId: string, config: OAuth2Config, options?: TokenProviderOptions): TokenProvider {
  return new TokenProvider(providerId, config, options);
}
