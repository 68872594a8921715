/**
 * The grant itself: present the subject token to the token endpoint and map the answer to an AccessToken
 * with an absolute expiry. jwt_bearer: RFC 7523 §2.1. token_exchange: RFC 8693 §2.1.
 */
import * as client from "openid-client";
import { decodeJwt } from "jose";
import { GOOGLE_CLOUD_PLATFORM_SCOPE } from "../config/defaults.js";
import { DEFAULT_SUBJECT_TOKEN_TYPE, type AuthFlow, type OAuth2Config } from "../config/schema.js";
import { TokenResponseError } from "../errors.js";
import { scrub } from "../log.js";
import type { AccessToken } from "../access-token.js";
import { toGrantError } from "./errors.js";

export type { AccessToken };

export const GRANT_TYPES: Record<AuthFlow, string> = {
  jwt_bearer: "urn:ietf:params:oauth:grant-type:jwt-bearer",
  token_exchange: "urn:ietf:params:oauth:grant-type:token-exchange",
  client_credentials: "client_credentials",
};

/** RFC 7523 §2.2: the client authenticates with a JWT, here the job's own token. */
export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** Lifetime assumed when the IdP states none (no `expires_in`, and the access token is not a JWT with `exp`). */
export const DEFAULT_LIFETIME_SECONDS = 300;

function grantParameters(config: OAuth2Config, subjectToken: string): URLSearchParams {
  const params = new URLSearchParams();
  if (config.authFlow === "jwt_bearer") {
    params.set("assertion", subjectToken);
  } else if (config.authFlow === "client_credentials") {
    // The schema requires a clientId with this flow.
    params.set("client_id", config.clientId ?? "");
    params.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
    params.set("client_assertion", subjectToken);
  } else {
    params.set("subject_token", subjectToken);
    params.set("subject_token_type", config.subjectTokenType ?? DEFAULT_SUBJECT_TOKEN_TYPE);
    for (const a of config.tokenExchangeAudience ?? []) params.append("audience", a);
    for (const r of config.tokenExchangeResource ?? []) params.append("resource", r);
    if (config.requestedTokenType) params.set("requested_token_type", config.requestedTokenType);
  }
  // With impersonation the STS token only buys the service account's: it needs cloud-platform, whatever scopes the
  // final token gets (serviceAccountImpersonation.scopes, else scopes), as Google's own client does.
  const scopes = config.serviceAccountImpersonation ? [GOOGLE_CLOUD_PLATFORM_SCOPE] : config.scopes;
  if (scopes?.length) params.set("scope", scopes.join(" "));
  return params;
}

/**
 * Expiry from `expires_in`, else the access token's own JWT `exp`, else the documented default. `requestedAt` is
 * when the grant request was sent: counting from then (not from the answer) keeps the expiry at or before the
 * IdP's, however long the answer took. (The IdP may also round its own expiry down to a whole second; the token
 * cache never serves a token in its last second for that reason.)
 */
export function resolveExpiry(
  response: { access_token: string; expires_in?: unknown },
  requestedAt: number,
): Pick<AccessToken, "expiresAt" | "expirySource"> {
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
  /** The subject token's non-secret claims (iss, sub, aud…): a refusal's hint names what the IdP must trust. */
  presented?: Record<string, unknown> | undefined;
}

/** Run the configured grant once. Throws GrantRefusedError, GrantRequestError or TokenResponseError. */
export async function requestAccessToken(
  configuration: client.Configuration,
  config: OAuth2Config,
  subjectToken: string,
  options: GrantOptions,
): Promise<AccessToken> {
  const { providerId } = options;
  const now = options.now ?? Date.now;
  const flow = config.authFlow;
  let response: client.TokenEndpointResponse;
  const requestedAt = now();
  try {
    response = await client.genericGrantRequest(configuration, GRANT_TYPES[flow], grantParameters(config, subjectToken));
  } catch (err) {
    throw toGrantError(
      err,
      flow,
      providerId,
      configuration.serverMetadata().token_endpoint,
      config.timeoutSeconds,
      options.presented,
      config.clientId,
    );
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
