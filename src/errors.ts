/**
 * One module for every error class the plugin raises. How a failure is described in words lives in
 * describe-failure.ts; how library and HTTP failures map to these classes lives in grant/errors.ts and
 * subject-token/http-token-request.ts.
 *
 * Each error has a stable `code` callers can switch on, the provider id and the step that failed, and a
 * message that is safe to print: it never holds a token, a secret or a request body. The original failure
 * stays reachable as `cause` for debugging, and is never rendered into the message.
 */

export type ErrorCode =
  | "ERR_CONFIG_INVALID"
  | "ERR_SUBJECT_TOKEN_UNAVAILABLE"
  | "ERR_SUBJECT_TOKEN_REQUEST"
  | "ERR_SUBJECT_TOKEN_INVALID"
  | "ERR_SUBJECT_TOKEN_CLAIMS"
  | "ERR_DISCOVERY"
  | "ERR_GRANT_REFUSED"
  | "ERR_GRANT_REQUEST"
  | "ERR_TOKEN_RESPONSE_INVALID"
  | "ERR_IMPERSONATION"
  | "ERR_PROVIDER_UNAUTHORIZED";

/** The step of the chain where a failure happened; used in messages and logs. */
export type Step = "config" | "subject-token" | "discovery" | "grant" | "impersonation" | "provider-request";

export interface CiAuthErrorOptions {
  providerId?: string | undefined;
  step: Step;
  cause?: unknown;
  /** A failure worth retrying (network, timeout, 5xx, 429): see src/retry.ts. Refusals and bad input are not. */
  transient?: boolean | undefined;
  /** How long the server asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number | undefined;
  /** A few words for the list of attempts in a final error, e.g. "HTTP 503"; defaults to the message. */
  summary?: string | undefined;
}

export class CiAuthError extends Error {
  readonly code: ErrorCode;
  readonly providerId: string | undefined;
  readonly step: Step;
  /** The message without the "opencode-ci-auth: provider …:" prefix, for log lines that already carry the provider. */
  readonly reason: string;
  readonly transient: boolean;
  readonly retryAfterMs: number | undefined;
  readonly summary: string;

  constructor(code: ErrorCode, message: string, options: CiAuthErrorOptions) {
    const prefix = options.providerId === undefined ? "opencode-ci-auth" : `opencode-ci-auth: provider "${options.providerId}"`;
    super(`${prefix}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = message;
    this.code = code;
    this.providerId = options.providerId;
    this.step = options.step;
    this.transient = options.transient ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.summary = options.summary ?? message;
  }
}

/** One problem in an `oauth2` block. `path` is the dotted field path, e.g. `oauth2.subjectTokenSource.audience`. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A provider's `options.oauth2` block (or its `options.baseURL`) is invalid. `issues` holds one entry per problem. */
export class ConfigError extends CiAuthError {
  readonly issues: readonly ConfigIssue[];
  constructor(providerId: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join("\n");
    super("ERR_CONFIG_INVALID", `invalid configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n${lines}`, {
      providerId,
      step: "config",
    });
    this.issues = issues;
  }
}

/** The subject-token source cannot produce a token here (missing variable, file, permission). */
export class SubjectTokenUnavailableError extends CiAuthError {
  readonly source: string;
  constructor(source: string, message: string, options: Omit<CiAuthErrorOptions, "step">) {
    super("ERR_SUBJECT_TOKEN_UNAVAILABLE", `${source} subject token: ${message}`, { ...options, step: "subject-token" });
    this.source = source;
  }
}

/** The CI platform's token service failed or answered something unusable. */
export class SubjectTokenRequestError extends CiAuthError {
  readonly source: string;
  readonly status: number | undefined;
  constructor(source: string, message: string, options: Omit<CiAuthErrorOptions, "step"> & { status?: number }) {
    super("ERR_SUBJECT_TOKEN_REQUEST", `${source} subject token: ${message}`, { ...options, step: "subject-token" });
    this.source = source;
    this.status = options.status;
  }
}

/** The subject token failed a local check (not a JWT, expired, wrong audience) and was not sent. */
export class SubjectTokenInvalidError extends CiAuthError {
  readonly source: string;
  constructor(source: string, message: string, options: Omit<CiAuthErrorOptions, "step">) {
    super("ERR_SUBJECT_TOKEN_INVALID", `${source} subject token: ${message}`, { ...options, step: "subject-token" });
    this.source = source;
  }
}

/** The subject token's claims do not match `expectClaims`: the IdP would refuse it, so it was not sent. */
export class SubjectTokenClaimsError extends CiAuthError {
  readonly source: string;
  /** One row per expected claim; `table` renders them. */
  readonly table: string;
  constructor(source: string, table: string, options: Omit<CiAuthErrorOptions, "step">) {
    super(
      "ERR_SUBJECT_TOKEN_CLAIMS",
      `${source} subject token: the job's claims do not match oauth2.expectClaims, so the IdP would refuse them (nothing was sent):\n${table}\nRun the job where the policy allows (branch, repository, environment), or correct expectClaims if the IdP's policy differs.`,
      { ...options, step: "subject-token" },
    );
    this.source = source;
    this.table = table;
  }
}

/** The issuer's discovery document could not be fetched or used. */
export class DiscoveryError extends CiAuthError {
  constructor(message: string, options: Omit<CiAuthErrorOptions, "step">) {
    super("ERR_DISCOVERY", message, { ...options, step: "discovery" });
  }
}

/** The IdP refused the grant with an OAuth error. `error` and `errorDescription` are the IdP's own words. */
export class GrantRefusedError extends CiAuthError {
  readonly grantType: string;
  readonly error: string;
  readonly errorDescription: string | undefined;
  readonly status: number | undefined;
  constructor(
    grantType: string,
    error: string,
    errorDescription: string | undefined,
    options: Omit<CiAuthErrorOptions, "step"> & { status?: number | undefined; hint?: string | undefined },
  ) {
    const described = errorDescription ? `${error}: ${errorDescription}` : error;
    const hint = options.hint ? ` ${options.hint}` : "";
    super("ERR_GRANT_REFUSED", `the IdP refused the ${grantType} grant (${described}).${hint}`, { ...options, step: "grant" });
    this.grantType = grantType;
    this.error = error;
    this.errorDescription = errorDescription;
    this.status = options.status;
  }
}

/** The grant request could not be completed (network, non-OAuth answer). */
export class GrantRequestError extends CiAuthError {
  readonly grantType: string;
  constructor(grantType: string, message: string, options: Omit<CiAuthErrorOptions, "step">) {
    super("ERR_GRANT_REQUEST", `${grantType} grant: ${message}`, { ...options, step: "grant" });
    this.grantType = grantType;
  }
}

/** The IdP answered 200 but the token response cannot be used safely. */
export class TokenResponseError extends CiAuthError {
  constructor(message: string, options: Omit<CiAuthErrorOptions, "step">) {
    super("ERR_TOKEN_RESPONSE_INVALID", `unusable token response: ${message}`, { ...options, step: "grant" });
  }
}

/**
 * The service account's token could not be had from Google IAM Credentials (`generateAccessToken`): refused (403,
 * 404, 400: `googleStatus` says which, the message what to grant to whom) or failing (transient).
 */
export class ImpersonationError extends CiAuthError {
  readonly serviceAccount: string;
  readonly status: number | undefined;
  /** Google's `error.status`, e.g. `PERMISSION_DENIED`, when it answered one. */
  readonly googleStatus: string | undefined;
  constructor(
    serviceAccount: string,
    message: string,
    options: Omit<CiAuthErrorOptions, "step"> & { status?: number | undefined; googleStatus?: string | undefined },
  ) {
    super("ERR_IMPERSONATION", `impersonation of ${serviceAccount}: ${message}`, { ...options, step: "impersonation" });
    this.serviceAccount = serviceAccount;
    this.status = options.status;
    this.googleStatus = options.googleStatus;
  }
}

export function isCiAuthError(value: unknown): value is CiAuthError {
  return value instanceof CiAuthError;
}

/** The model provider refused a freshly issued access token, after one refresh and one retry. */
export class ProviderUnauthorizedError extends CiAuthError {
  readonly status: number;
  constructor(origin: string, status: number, providerSaid: string, options: Omit<CiAuthErrorOptions, "step">) {
    const said = providerSaid ? ` The provider said: ${providerSaid}` : "";
    super(
      "ERR_PROVIDER_UNAUTHORIZED",
      `the provider at ${origin} answered HTTP ${status} to a freshly issued access token, after one refresh and one retry. Check that it accepts tokens from this IdP (issuer, audience, scopes).${said}`,
      { ...options, step: "provider-request" },
    );
    this.status = status;
  }
}

/**
 * A transient failure that kept failing until the retry budget ran out. It keeps the last failure's code and
 * step, and lists every attempt, so the user sees that retries happened and why each one failed.
 */
export class RetriesExhaustedError extends CiAuthError {
  readonly attempts: readonly string[];
  constructor(last: CiAuthError, attempts: readonly string[], elapsedMs: number, why: string) {
    const list = attempts.map((a, i) => `${i + 1}) ${a}`).join("; ");
    super(
      last.code,
      `${last.reason} Gave up after ${attempts.length} attempt${attempts.length === 1 ? "" : "s"} in ${(elapsedMs / 1000).toFixed(1)}s (${why}): ${list}.`,
      {
        providerId: last.providerId,
        step: last.step,
        cause: last,
        transient: true,
        summary: last.summary,
      },
    );
    this.attempts = attempts;
  }
}
