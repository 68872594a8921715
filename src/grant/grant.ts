/**
 * The grant itself: present the subject token to the token endpoint and map the answer to an AccessToken
 * with an absolute expiry. jwt_bearer: RFC 7523 §2.1. token_exchange: RFC 8693 §2.1.
 */
import * as client from "openid-client";
import { decodeJwt } from "jose";
import { DEFAULT_SUBJECT_TOKEN_TYPE, type AuthFlow, type OAuth2Config } from "../config/schema.js";
import { GrantRefusedError, GrantRequestError, TokenResponseError, describeCause, hasTimeoutInChain, isTransientStatus } from "../errors.js";
import { MAX_BODY_BYTES, bodyTooLargeIn, formatBytes } from "../http/body.js";
import { scrub } from "../log.js";
import { DEFAULT_TIMEOUT_SECONDS, retryAfterOf, statusOf } from "./client.js";

export const GRANT_TYPES: Record<AuthFlow, string> = {
  jwt_bearer: "urn:ietf:params:oauth:grant-type:jwt-bearer",
  token_exchange: "urn:ietf:params:oauth:grant-type:token-exchange",
};

/** Lifetime assumed when the IdP states none (no `expires_in`, and the access token is not a JWT with `exp`). */
export const DEFAULT_LIFETIME_SECONDS = 300;

export interface AccessToken {
  /** The bearer value. Secret: never log it. */
  value: string;
  /** Always "Bearer": the only type this plugin puts on a request. */
  tokenType: "Bearer";
  /** Epoch ms when it was issued (as seen here). */
  issuedAt: number;
  /** Epoch ms when it stops being valid. */
  expiresAt: number;
  /** Where the expiry came from; `default` means DEFAULT_LIFETIME_SECONDS was assumed. */
  expirySource: "expires_in" | "jwt_exp" | "default";
  scope: string | undefined;
}

function grantParameters(config: OAuth2Config, subjectToken: string): URLSearchParams {
  const params = new URLSearchParams();
  if (config.authFlow === "jwt_bearer") {
    params.set("assertion", subjectToken);
  } else {
    params.set("subject_token", subjectToken);
    params.set("subject_token_type", config.subjectTokenType ?? DEFAULT_SUBJECT_TOKEN_TYPE);
    for (const a of config.tokenExchangeAudience ?? []) params.append("audience", a);
    for (const r of config.tokenExchangeResource ?? []) params.append("resource", r);
    if (config.requestedTokenType) params.set("requested_token_type", config.requestedTokenType);
  }
  if (config.scopes?.length) params.set("scope", config.scopes.join(" "));
  return params;
}

export const REFUSAL_HINTS: Record<string, string> = {
  invalid_grant: "The IdP did not accept the job's token: compare its trust policy (issuer, audience, repository/project, ref) with the token's claims, which the plugin logs with this error.",
  invalid_client: "Client authentication failed: check clientId, clientSecret and tokenEndpointAuthMethod against the IdP's client settings.",
  unauthorized_client: "This client may not use this grant type: enable it for the client at the IdP.",
  unsupported_grant_type: "The IdP does not support this grant type: enable it, or switch authFlow.",
  invalid_scope: "Check oauth2.scopes against the scopes the client may request.",
  invalid_target: "Check tokenExchangeAudience / tokenExchangeResource against what the IdP knows.",
  invalid_request: "The IdP rejected the request's shape: check authFlow and subjectTokenType.",
};

/** Map any openid-client failure to one of our errors, keeping the IdP's `error` and `error_description`. */
/** OAuth error codes that mean "the server is in trouble", not "you are refused" (RFC 6749 §5.2, §4.1.2.1). */
const TRANSIENT_OAUTH_ERRORS = new Set(["server_error", "temporarily_unavailable"]);

export function toGrantError(err: unknown, flow: AuthFlow, providerId: string, tokenEndpoint: string | undefined, timeoutSeconds = DEFAULT_TIMEOUT_SECONDS): Error {
  if (err instanceof client.ResponseBodyError) {
    const description = err.error_description === undefined ? undefined : scrub(err.error_description);
    // A refusal is final; an OAuth error body on a 5xx/429, or server_error / temporarily_unavailable, is the IdP in trouble.
    const transient = TRANSIENT_OAUTH_ERRORS.has(err.error) || isTransientStatus(err.status);
    return new GrantRefusedError(flow, err.error, description, {
      providerId,
      status: err.status,
      hint: REFUSAL_HINTS[err.error],
      cause: err,
      transient,
      retryAfterMs: transient ? retryAfterOf(err) : undefined,
      summary: `HTTP ${err.status} ${err.error}`,
    });
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const params = err.cause[0]?.parameters;
    const error = params?.error ?? "invalid_client";
    const description = params?.error_description === undefined ? undefined : scrub(params.error_description);
    return new GrantRefusedError(flow, error, description, { providerId, status: err.status, hint: REFUSAL_HINTS[error], cause: err });
  }
  const where = tokenEndpoint ? ` at ${tokenEndpoint}` : "";
  const code = (err as { code?: unknown }).code;
  const status = statusOf(err);
  if (bodyTooLargeIn(err)) {
    const http = status === undefined ? "" : ` (HTTP ${status})`;
    return new TokenResponseError(`the token endpoint${where} answered more than ${formatBytes(MAX_BODY_BYTES)}${http}, which is not a token response; the rest was not read. Check the token endpoint URL.`, { providerId });
  }
  // openid-client reads only 4xx bodies as OAuth errors: a 5xx is NOT_CONFORM, a 429 without JSON is NOT_JSON.
  if (code === "OAUTH_RESPONSE_IS_NOT_CONFORM" || (code === "OAUTH_RESPONSE_IS_NOT_JSON" && isTransientStatus(status))) {
    const transient = isTransientStatus(status);
    // Redirects are never followed (openid-client uses redirect: "manual"): the subject token goes only where configured.
    const redirect = status !== undefined && status >= 300 && status < 400 ? " It is a redirect, which is not followed: the subject token is only sent to the configured endpoint. Configure the final URL." : "";
    const what = transient ? " (the IdP is failing or overloaded)" : redirect ? "" : " without an OAuth error";
    return new GrantRequestError(flow, `the token endpoint${where} answered HTTP ${status ?? "error"}${what}.${redirect}`, {
      providerId,
      cause: err,
      transient,
      retryAfterMs: transient ? retryAfterOf(err) : undefined,
      summary: `HTTP ${status ?? "error"}`,
    });
  }
  if (code === "OAUTH_RESPONSE_IS_NOT_JSON") {
    const http = status === undefined ? "" : ` (HTTP ${status})`;
    return new TokenResponseError(`the token endpoint${where} answered something that is not JSON${http}. Check the token endpoint URL: a login page or a proxy answered instead of the IdP.`, { providerId });
  }
  // A body that stalls past the timeout surfaces as a parse error whose cause chain ends in a TimeoutError.
  if (code === "OAUTH_TIMEOUT" || hasTimeoutInChain(err)) {
    return new GrantRequestError(flow, `the token endpoint${where} did not answer within ${timeoutSeconds}s.`, {
      providerId,
      cause: err,
      transient: true,
      summary: `no answer within ${timeoutSeconds}s`,
    });
  }
  // openid-client wraps oauth4webapi's specific reason ("...access_token property must be a string") in a generic
  // "invalid response encountered"; the cause holds it. Neither holds a token; scrubbed regardless.
  const detail = scrub(((err as Error).cause as Error | undefined)?.message ?? (err as Error).message ?? "");
  // No `cause` on these: openid-client's cause holds the response body, access_token included.
  if (code === "OAUTH_UNSUPPORTED_OPERATION" && /token_type/.test(`${detail} ${(err as Error).message}`)) {
    return new TokenResponseError(
      `the token endpoint${where} issued a token_type this plugin cannot send (only Bearer, and N_A for token_exchange). Check the client's token settings at the IdP.`,
      { providerId },
    );
  }
  if (typeof code === "string" && code.startsWith("OAUTH_")) {
    return new TokenResponseError(`the token endpoint${where} answered an invalid token response: ${detail} (${code}).`, { providerId });
  }
  return new GrantRequestError(flow, `could not reach the token endpoint${where} (${describeCause(err)}).`, {
    providerId,
    cause: err,
    transient: true,
    summary: `could not connect (${describeCause(err)})`,
  });
}

/**
 * Expiry from `expires_in`, else the access token's own JWT `exp`, else the documented default. `requestedAt` is
 * when the grant request was sent: counting from then (not from the answer) keeps the expiry at or before the
 * IdP's, however long the answer took. (The IdP may also round its own expiry down to a whole second; the token
 * cache never serves a token in its last second for that reason.)
 */
export function resolveExpiry(response: { access_token: string; expires_in?: unknown }, requestedAt: number): Pick<AccessToken, "expiresAt" | "expirySource"> {
  const expiresIn = response.expires_in;
  if (typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0) {
    return { expiresAt: requestedAt + expiresIn * 1000, expirySource: "expires_in" };
  }
  const now = requestedAt;
  try {
    const exp = decodeJwt(response.access_token).exp;
    if (typeof exp === "number" && exp * 1000 > now) return { expiresAt: exp * 1000, expirySource: "jwt_exp" };
  } catch {
    // opaque token: fall through to the default
  }
  return { expiresAt: now + DEFAULT_LIFETIME_SECONDS * 1000, expirySource: "default" };
}

export interface GrantOptions {
  providerId: string;
  now?: () => number;
}

/** Run the configured grant once. Throws GrantRefusedError, GrantRequestError or TokenResponseError. */
export async function requestAccessToken(configuration: client.Configuration, config: OAuth2Config, subjectToken: string, options: GrantOptions): Promise<AccessToken> {
  const { providerId } = options;
  const now = options.now ?? Date.now;
  const flow = config.authFlow;
  let response: client.TokenEndpointResponse;
  const requestedAt = now();
  try {
    response = await client.genericGrantRequest(configuration, GRANT_TYPES[flow], grantParameters(config, subjectToken));
  } catch (err) {
    throw toGrantError(err, flow, providerId, configuration.serverMetadata().token_endpoint, configuration.timeout);
  }
  // openid-client already refused a missing access_token, and any token_type but bearer, dpop and (token
  // exchange only) n_a. RFC 8693 §2.2.1: N_A means "not an OAuth access token"; it is still presented as a bearer.
  if (response.token_type !== "bearer" && response.token_type !== "n_a") {
    throw new TokenResponseError(
      `the IdP issued a token of type "${scrub(String(response.token_type))}"; only Bearer tokens are supported (a DPoP-bound token cannot be sent as a bearer).`,
      { providerId },
    );
  }
  return {
    value: response.access_token,
    tokenType: "Bearer",
    issuedAt: requestedAt,
    ...resolveExpiry(response, requestedAt),
    scope: typeof response.scope === "string" ? response.scope : undefined,
  };
}
