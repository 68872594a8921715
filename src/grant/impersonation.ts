/**
 * Google service account impersonation: the federated token from STS is traded at IAM Credentials for the service
 * account's own access token (`generateAccessToken`), the token the model provider (Vertex AI) then receives.
 * Only that token is cached; its `expireTime` drives the refresh. The request follows the rules of every token
 * request: https (loopback for tests), one time limit for headers and body, no redirects, a bounded body,
 * transient failures marked for retry, and no token in any message.
 * @see https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken
 */
import type { AccessToken } from "../access-token.js";
import { googlePrincipalOf } from "../config/cloud-services.js";
import { GOOGLE_CLOUD_PLATFORM_SCOPE } from "../config/defaults.js";
import type { OAuth2Config } from "../config/schema.js";
import { describeCause } from "../describe-failure.js";
import { ImpersonationError } from "../errors.js";
import { MAX_BODY_BYTES, formatBytes, readBodyLimited } from "../http/body.js";
import { isTransientStatus, parseRetryAfter } from "../http/status.js";
import { insecureReason } from "../http/transport.js";
import { quote } from "../scrub.js";

export interface ImpersonationOptions {
  providerId: string;
  fetch: typeof globalThis.fetch;
  timeoutSeconds: number;
  now: () => number;
  /** The subject token's `sub`, to name the principal that needs the role (never the token itself). */
  subject?: string | undefined;
}

type Impersonation = NonNullable<OAuth2Config["serviceAccountImpersonation"]>;

/** The scopes of the service account's token: its own, else the block's, else cloud-platform. */
export function impersonationScopes(config: OAuth2Config): string[] {
  const own = config.serviceAccountImpersonation?.scopes;
  if (own?.length) return own;
  return config.scopes?.length ? config.scopes : [GOOGLE_CLOUD_PLATFORM_SCOPE];
}

export function generateAccessTokenUrl(impersonation: Impersonation): URL {
  const base = impersonation.endpoint.replace(/\/+$/, "");
  return new URL(`${base}/v1/projects/-/serviceAccounts/${encodeURIComponent(impersonation.email)}:generateAccessToken`);
}

interface GoogleError {
  code?: unknown;
  message?: unknown;
  status?: unknown;
}

/** What to do about a refusal, by Google's status: what to grant to whom. */
function refusalHint(
  status: string | undefined,
  httpStatus: number,
  said: string,
  config: OAuth2Config,
  impersonation: Impersonation,
  subject: string | undefined,
): string {
  const provider = config.tokenExchangeAudience?.find((a) => a.startsWith("//iam.googleapis.com/"));
  const principal = provider && subject ? googlePrincipalOf(provider, subject) : undefined;
  const who =
    principal ??
    "the pool's principal for this job (principal://iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/subject/<sub>)";
  if (/insufficient authentication scopes/i.test(said)) {
    return "The federated token from STS lacks the cloud-platform scope that IAM Credentials needs: do not narrow the STS step's scope; put the service account token's scopes in serviceAccountImpersonation.scopes.";
  }
  if (status === "PERMISSION_DENIED" || httpStatus === 403) {
    return `Grant roles/iam.workloadIdentityUser on the service account ${impersonation.email} to ${who} (or to a principalSet that contains it); a new binding takes a minute or two to apply.`;
  }
  if (status === "NOT_FOUND" || httpStatus === 404)
    return `Check serviceAccountImpersonation.email: the service account ${impersonation.email} does not exist, or is in another project.`;
  if (status === "UNAUTHENTICATED" || httpStatus === 401)
    return "Google did not accept the federated token from STS: check that tokenExchangeAudience names the provider of the pool whose principals the service account trusts.";
  if (status === "INVALID_ARGUMENT" || httpStatus === 400) {
    return `Check serviceAccountImpersonation: lifetimeSeconds above 3600 needs the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension; scopes must be Google OAuth scopes.`;
  }
  return "";
}

/** The service account's access token, from the federated token. Throws ImpersonationError. */
export async function impersonateServiceAccount(
  federated: AccessToken,
  config: OAuth2Config,
  options: ImpersonationOptions,
): Promise<AccessToken> {
  const impersonation = config.serviceAccountImpersonation as Impersonation;
  const { providerId, timeoutSeconds } = options;
  const email = impersonation.email;
  const url = generateAccessTokenUrl(impersonation);
  const insecure = insecureReason(url);
  if (insecure) throw new ImpersonationError(email, `${insecure}; a token must not travel in clear text.`, { providerId });
  const scopes = impersonationScopes(config);
  const requestedAt = options.now();
  const timeout = AbortSignal.timeout(timeoutSeconds * 1000);
  let response: Response;
  let text: string;
  let truncated: boolean;
  try {
    response = await options.fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${federated.value}`, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ scope: scopes, lifetime: `${impersonation.lifetimeSeconds}s` }),
      // The federated token is only sent to the configured IAM endpoint.
      redirect: "manual",
      signal: timeout,
    });
    ({ text, truncated } = await readBodyLimited(response, MAX_BODY_BYTES));
  } catch (err) {
    const what = timeout.aborted
      ? `IAM Credentials at ${url.origin} did not answer within ${timeoutSeconds}s.`
      : `could not reach IAM Credentials at ${url.origin} (${describeCause(err)}).`;
    const summary = timeout.aborted ? `no answer within ${timeoutSeconds}s` : `could not connect (${describeCause(err)})`;
    throw new ImpersonationError(email, what, { providerId, cause: err, transient: true, summary });
  }
  const status = response.status;
  if (status >= 300 && status < 400) {
    throw new ImpersonationError(
      email,
      `IAM Credentials at ${url.origin} answered a redirect (HTTP ${status}), which is not followed: the federated token is only sent to the configured endpoint.`,
      {
        providerId,
        status,
        summary: `HTTP ${status}`,
      },
    );
  }
  if (truncated)
    throw new ImpersonationError(
      email,
      `IAM Credentials at ${url.origin} answered more than ${formatBytes(MAX_BODY_BYTES)}; the rest was not read.`,
      { providerId, status },
    );
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status < 200 || status >= 300) {
    const error = (body as { error?: GoogleError } | undefined)?.error;
    const googleStatus = typeof error?.status === "string" ? error.status : undefined;
    const said = typeof error?.message === "string" ? quote(error.message, 300) : quote(text, 200);
    const transient = isTransientStatus(status);
    const hint = transient ? "" : refusalHint(googleStatus, status, said, config, impersonation, options.subject);
    throw new ImpersonationError(
      email,
      `IAM Credentials answered HTTP ${status}${googleStatus ? ` ${googleStatus}` : ""}${said ? `: ${said}` : ""}.${hint ? ` ${hint}` : ""}`,
      {
        providerId,
        status,
        googleStatus,
        transient,
        retryAfterMs: transient ? parseRetryAfter(response.headers.get("retry-after")) : undefined,
        summary: `HTTP ${status}${googleStatus ? ` ${googleStatus}` : ""}`,
      },
    );
  }
  const answer = body as { accessToken?: unknown; expireTime?: unknown } | undefined;
  const expireTime = typeof answer?.expireTime === "string" ? Date.parse(answer.expireTime) : Number.NaN;
  if (typeof answer?.accessToken !== "string" || answer.accessToken.length === 0 || Number.isNaN(expireTime)) {
    throw new ImpersonationError(email, `IAM Credentials at ${url.origin} answered without an accessToken and an expireTime.`, {
      providerId,
      status,
    });
  }
  return {
    value: answer.accessToken,
    tokenType: "Bearer",
    issuedAt: requestedAt,
    // Never later than the lifetime asked for, counted from the request: a clock ahead of Google's cannot stretch it.
    expiresAt: Math.min(expireTime, requestedAt + impersonation.lifetimeSeconds * 1000),
    expirySource: "expire_time",
    scope: scopes.join(" "),
  };
}
