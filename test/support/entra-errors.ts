/**
 * Microsoft Entra ID's token endpoint errors, as the fake Entra answers them: the AADSTS codes and wording that
 * real responses carry, and the response shape documented at
 * https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes#handling-error-codes-in-your-application
 *
 * Wording marked [obs] was copied from real responses quoted in public issues (see /work/notes/cloud-research.md
 * for each URL); [doc] is the Learn error table; "fake's own" means neither source gives the text.
 */
import { randomUUID } from "node:crypto";

export interface EntraError {
  status: number;
  /** OAuth `error`. */
  error: string;
  /** The AADSTS number. */
  code: number;
  /** `error_description` text after `AADSTSnnnn: `, before the trace lines. */
  text: string;
}

const WIF_DOCS_OLD = "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation";
const WIF_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
const CHECK_FIC = "Check your federated identity credential Subject, Audience and Issuer against the presented assertion.";

function e(status: number, error: string, code: number, text: string): EntraError {
  return { status, error, code, text };
}

/** Every failure the fake can answer, by cause. */
export const aadsts = {
  /** [doc] table, [obs] wording at the token endpoint. */
  tenantNotFound: (tenant: string, error = "invalid_request") =>
    e(
      400,
      error,
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    ),
  /** [obs] */
  tenantIdentifierInvalid: (tenant: string) =>
    e(400, "invalid_request", 900023, `Specified tenant identifier '${tenant}' is neither a valid DNS name, nor a valid external domain.`),
  /** [doc][obs] client credentials against common/organizations/consumers. */
  noTenantInformation: () =>
    e(
      400,
      "invalid_request",
      50059,
      "No tenant-identifying information found in either the request or implied by any provided credentials.",
    ),
  /** [doc] */
  postOnly: (method: string) =>
    e(400, "invalid_request", 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`),
  /** [doc] */
  missingParameter: (name: string) =>
    e(400, "invalid_request", 900144, `The request body must contain the following parameter: '${name}'.`),
  /** [doc] code; wording fake's own. */
  unsupportedGrantType: (grantType: string) =>
    e(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grantType}'.`),
  /** [doc] code; wording fake's own. */
  invalidAssertionType: () => e(400, "invalid_request", 90100, "The 'client_assertion_type' parameter is empty or not valid."),
  /** [doc][obs] */
  applicationNotFound: (clientId: string, directory: string) =>
    e(
      400,
      "unauthorized_client",
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    ),
  /** [doc] */
  missingClientCredential: () =>
    e(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
  /** [doc] code; the fake registers no secrets, so every secret is wrong. */
  invalidClientSecret: (clientId: string) =>
    e(
      401,
      "invalid_client",
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
    ),
  /** [obs] */
  scopeNotDefault: (scope: string) =>
    e(
      400,
      "invalid_scope",
      1002012,
      `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    ),
  /** [doc] code; wording fake's own. */
  scopeSeveralResources: (scope: string) =>
    e(
      400,
      "invalid_scope",
      700022,
      `The provided value for the input parameter scope isn't valid because it contains more than one resource. Scope ${scope} is not valid.`,
    ),
  /** [doc] */
  resourceNotFound: (resource: string, tenantName: string) =>
    e(
      400,
      "invalid_resource",
      500011,
      `The resource principal named ${resource} was not found in the tenant named ${tenantName}. This can happen if the application hasn't been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    ),
  /** [doc] code (InvalidJwtToken); wording fake's own. */
  malformedAssertion: () => e(400, "invalid_request", 50027, "Invalid JWT token. The token format isn't proper."),
  /** [obs] no federated credential on the app has the token's issuer. */
  noRecordForIssuer: (iss: string) =>
    e(
      401,
      "invalid_client",
      700211,
      `No matching federated identity record found for presented assertion issuer '${iss}'. Please ${lower(CHECK_FIC)} ${WIF_DOCS_OLD}`,
    ),
  /** [obs] issuer matches, subject does not. */
  noRecordForSubject: (sub: string) =>
    e(
      401,
      "invalid_client",
      700213,
      `No matching federated identity record found for presented assertion subject '${sub}'. ${CHECK_FIC} ${WIF_DOCS}`,
    ),
  /** [obs] the subject matches only when case is ignored (case-sensitive since August 2024). */
  subjectCaseMismatch: (sub: string) =>
    e(
      401,
      "invalid_client",
      7002138,
      `No matching federated identity record found for presented assertion subject '${sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. ${CHECK_FIC} See documentation at: ${WIF_DOCS}. See breaking change notification and remediation at: https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes#august-2024.`,
    ),
  /** [obs] issuer and subject match, audience does not. */
  noRecordForAudience: (aud: string) =>
    e(
      401,
      "invalid_client",
      700212,
      `No matching federated identity record found for presented assertion audience '${aud}'. Please ${lower(CHECK_FIC)} ${WIF_DOCS_OLD}`,
    ),
  /** [doc][obs] the older combined form (still seen while a new credential propagates). */
  noMatchingRecord: (iss: string, sub: string, aud: string) =>
    e(
      401,
      "invalid_client",
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${aud}'. ${WIF_DOCS_OLD}`,
    ),
  /** [obs] */
  assertionTimeRange: (now: number, nbf: number | undefined, exp: number | undefined) =>
    e(
      401,
      "invalid_client",
      700024,
      `Client assertion is not within its valid time range. Current time: ${dotnetTime(now)}, assertion valid from ${dotnetTime((nbf ?? 0) * 1000)}, expiry time of assertion ${dotnetTime((exp ?? 0) * 1000)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
    ),
  /** [obs] the signing key is not in the issuer's metadata (also used when the metadata cannot be read: fake's choice). */
  signingKeyNotFound: (kid: string, iss: string) =>
    e(
      401,
      "invalid_client",
      7000272,
      `The certificate with identifier ${kid} used to sign the federated credential could not be found in the metadata of identity provider ${iss}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
    ),
  /** [doc] */
  badSignature: () => e(401, "invalid_client", 700027, "Client assertion failed signature validation."),
} as const;

function lower(sentence: string): string {
  return sentence.charAt(0).toLowerCase() + sentence.slice(1);
}

/** .NET round-trip time, as Entra prints it: `2024-10-02T22:05:03.6750000Z`. */
export function dotnetTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$10000Z");
}

/** Entra's `timestamp`: `2016-01-09 02:02:12Z`. */
export function entraTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
}

export interface EntraErrorContext {
  now: number;
  /** The request's `client-request-id`, echoed as `correlation_id` (as Entra does). */
  correlationId?: string;
  /** Before the trace lines: `\r\n` in the docs and older responses, one space since 2024. */
  lineBreak: " " | "\r\n";
}

/** The response body Entra sends for `err`, and the trace id it used (also sent as `x-ms-request-id`). */
export function entraErrorBody(err: EntraError, ctx: EntraErrorContext): { body: Record<string, unknown>; traceId: string } {
  const traceId = randomUUID();
  const correlationId = ctx.correlationId ?? randomUUID();
  const timestamp = entraTimestamp(ctx.now);
  const br = ctx.lineBreak;
  return {
    traceId,
    body: {
      error: err.error,
      error_description: `AADSTS${err.code}: ${err.text}${br}Trace ID: ${traceId}${br}Correlation ID: ${correlationId}${br}Timestamp: ${timestamp}`,
      error_codes: [err.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${err.code}`,
    },
  };
}
