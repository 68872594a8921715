/**
 * The one place where openid-client's failures become the plugin's errors: discovery (discoveryError) and the
 * grant (toGrantError). OAuth refusals keep the IdP's `error` and `error_description`; transient failures
 * (network, timeout, 408/429/5xx, `server_error`, `temporarily_unavailable`) are marked for retry; nothing that
 * may hold a token (a response body, an assertion) reaches a message or a `cause`.
 */
import * as client from "openid-client";
import type { AuthFlow } from "../config/schema.js";
import { describeCause } from "../describe-failure.js";
import { DiscoveryError, GrantRefusedError, GrantRequestError, TokenResponseError } from "../errors.js";
import { MAX_BODY_BYTES, bodyTooLargeIn, formatBytes } from "../http/body.js";
import { isTransientStatus, parseRetryAfter } from "../http/status.js";
import { scrub } from "../log.js";
import { cloudRefusalHint } from "./cloud-refusals.js";

/** A timeout anywhere in the cause chain: openid-client reports a body that stalls past its timeout as a parse error. */
export function hasTimeoutInChain(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === "TimeoutError") return true;
  }
  return false;
}

export const REFUSAL_HINTS: Record<string, string> = {
  invalid_grant:
    "The IdP did not accept the job's token: compare its trust policy (issuer, audience, repository/project, ref) with the token's claims, which the plugin logs with this error.",
  invalid_client:
    "Client authentication failed: check clientId, clientSecret and tokenEndpointAuthMethod against the IdP's client settings.",
  unauthorized_client: "This client may not use this grant type: enable it for the client at the IdP.",
  unsupported_grant_type: "The IdP does not support this grant type: enable it, or switch authFlow.",
  invalid_scope: "Check oauth2.scopes against the scopes the client may request.",
  invalid_target: "Check tokenExchangeAudience / tokenExchangeResource against what the IdP knows.",
  invalid_request: "The IdP rejected the request's shape: check authFlow and subjectTokenType.",
};

/** The generic hint for an OAuth error; with client_credentials the client's authentication is the job's token. */
function refusalHint(error: string, flow: AuthFlow): string | undefined {
  if (flow === "client_credentials" && error === "invalid_client") {
    return "The IdP did not accept the job's token as the client's authentication: check the federated credential registered for this client (issuer, subject, audience) against the token's claims, which the plugin logs with this error.";
  }
  return REFUSAL_HINTS[error];
}

/** Map any openid-client failure to one of our errors, keeping the IdP's `error` and `error_description`. */
/** OAuth error codes that mean "the server is in trouble", not "you are refused" (RFC 6749 §5.2, §4.1.2.1). */
const TRANSIENT_OAUTH_ERRORS = new Set(["server_error", "temporarily_unavailable"]);

export function toGrantError(
  err: unknown,
  flow: AuthFlow,
  providerId: string,
  tokenEndpoint: string | undefined,
  timeoutSeconds: number,
  presented?: Record<string, unknown>,
  clientId?: string,
): Error {
  if (err instanceof client.ResponseBodyError) {
    const description = err.error_description === undefined ? undefined : scrub(err.error_description);
    // A refusal is final; an OAuth error body on a 5xx/429, or server_error / temporarily_unavailable, is the IdP in trouble.
    const transient = TRANSIENT_OAUTH_ERRORS.has(err.error) || isTransientStatus(err.status);
    return new GrantRefusedError(flow, err.error, description, {
      providerId,
      status: err.status,
      hint: cloudRefusalHint(err.error, err.error_description, clientId, presented) ?? refusalHint(err.error, flow),
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
    const hint = cloudRefusalHint(error, params?.error_description, clientId, presented) ?? refusalHint(error, flow);
    return new GrantRefusedError(flow, error, description, { providerId, status: err.status, hint, cause: err });
  }
  const where = tokenEndpoint ? ` at ${tokenEndpoint}` : "";
  const code = (err as { code?: unknown }).code;
  const status = statusOf(err);
  if (bodyTooLargeIn(err)) {
    const http = status === undefined ? "" : ` (HTTP ${status})`;
    return new TokenResponseError(
      `the token endpoint${where} answered more than ${formatBytes(MAX_BODY_BYTES)}${http}, which is not a token response; the rest was not read. Check the token endpoint URL.`,
      { providerId },
    );
  }
  // openid-client reads only 4xx bodies as OAuth errors: a 5xx is NOT_CONFORM, a 429 without JSON is NOT_JSON.
  if (code === "OAUTH_RESPONSE_IS_NOT_CONFORM" || (code === "OAUTH_RESPONSE_IS_NOT_JSON" && isTransientStatus(status))) {
    const transient = isTransientStatus(status);
    // Redirects are never followed (openid-client uses redirect: "manual"): the subject token goes only where configured.
    const redirect =
      status !== undefined && status >= 300 && status < 400
        ? " It is a redirect, which is not followed: the subject token is only sent to the configured endpoint. Configure the final URL."
        : "";
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
    return new TokenResponseError(
      `the token endpoint${where} answered something that is not JSON${http}. Check the token endpoint URL: a login page or a proxy answered instead of the IdP.`,
      { providerId },
    );
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

export function discoveryError(providerId: string, issuer: URL, err: unknown, timeoutSeconds: number): DiscoveryError {
  const code = (err as { code?: unknown }).code;
  const status = statusOf(err);
  const say = (hint: string, extra: { transient?: boolean; summary?: string; retryAfterMs?: number | undefined } = {}) =>
    new DiscoveryError(`discovery at ${issuer.href} did not succeed: ${hint}`, { providerId, cause: err, ...extra });
  if (bodyTooLargeIn(err)) {
    return say(
      `the answer is larger than ${formatBytes(MAX_BODY_BYTES)}, which is not a discovery document; the rest was not read. Check the issuer URL.`,
    );
  }
  switch (code) {
    case "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED":
      return say(
        "the document's issuer differs from the configured issuer. They must match exactly (scheme, host, port, path, trailing slash).",
      );
    case "OAUTH_RESPONSE_IS_NOT_JSON":
      return say("the answer is not JSON. Check that issuer is the IdP's issuer URL (e.g. Keycloak: https://HOST/realms/REALM).");
    case "OAUTH_RESPONSE_IS_NOT_CONFORM": {
      const transient = isTransientStatus(status);
      return say(
        `the IdP answered HTTP ${status ?? "error"} for /.well-known/openid-configuration. Check the issuer URL, or set oauth2.tokenEndpoint to skip discovery.`,
        {
          transient,
          summary: `HTTP ${status ?? "error"}`,
          retryAfterMs: transient ? retryAfterOf(err) : undefined,
        },
      );
    }
    case "OAUTH_TIMEOUT":
      return say(`no answer within ${timeoutSeconds}s.`, { transient: true, summary: `no answer within ${timeoutSeconds}s` });
    default:
      if (hasTimeoutInChain(err))
        return say(`no answer within ${timeoutSeconds}s.`, { transient: true, summary: `no answer within ${timeoutSeconds}s` });
      return say(`could not reach it (${describeCause(err)}). Check the issuer URL and that the job can reach the IdP.`, {
        transient: true,
        summary: `could not connect (${describeCause(err)})`,
      });
  }
}

/** Retry-After of the HTTP answer behind an openid-client error, when there is one. */
export function retryAfterOf(err: unknown): number | undefined {
  const response = (err as { cause?: unknown; response?: unknown }).response ?? (err as { cause?: unknown }).cause;
  return response instanceof Response ? parseRetryAfter(response.headers.get("retry-after")) : undefined;
}

export function statusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; cause?: { status?: unknown } };
  if (typeof e.status === "number") return e.status;
  if (typeof e.cause?.status === "number") return e.cause.status;
  return undefined;
}
