/**
 * A fake Google Security Token Service on 127.0.0.1 for tests: `POST /v1/token`, the RFC 8693 exchange Google
 * documents for workload identity federation with an OIDC provider, answered with the error bodies real STS sends.
 * The real service is never reached; sources for every behaviour are in /work/notes/cloud-research.md.
 *
 * It checks the provider `audience`, the token types, the subject token's issuer, signature (issuer's JWKS via its
 * discovery), validity (~60 s skew, as measured), `aud` against the provider's allowed audiences (default: the
 * provider's resource name with `//` or `https:` prefix) and the attribute condition. It is stricter than Google on
 * one point, on purpose: a request carrying any parameter Google does not document for this exchange (`client_id`,
 * `assertion`, `resource`, ...) or an `Authorization` header is refused, so a test proves what the client sends.
 * Issued federated tokens are opaque (`ya29.d.…`) and can be looked up by the IAM Credentials fake.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";

import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors } from "jose";
import type { JWTPayload } from "jose";

import { closeServer, isRecord, listen, mediaType, opaqueToken, parseForm, readBody, sendJson } from "./cloud-http.js";
import { createIssuerKeyResolver } from "./oidc-issuer-keys.js";

export const STS_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const STS_TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";
export const STS_TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt";
export const STS_TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token";
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** The parameters Google documents for `v1/token` (form names; JSON also takes the camelCase forms). */
export const STS_PARAMETERS = [
  "grant_type",
  "audience",
  "scope",
  "requested_token_type",
  "subject_token",
  "subject_token_type",
  "options",
] as const;

export interface WorkloadIdentityProvider {
  /** Project number (not the project ID: Google's audience uses the number). */
  projectNumber: string;
  poolId: string;
  providerId: string;
  /** Must equal the subject token's `iss`. */
  issuerUri: string;
  /** JWKS URL; default: the issuer's discovery `jwks_uri`. */
  jwksUri?: string;
  /** Explicit allowed `aud` values; empty/absent means the provider's resource name with or without `https:`. */
  allowedAudiences?: string[];
  /** Attribute mapping over the token's claims. Default `{ 'google.subject': assertion.sub }`. */
  attributeMapping?: (assertion: JWTPayload) => Record<string, string | undefined>;
  /** Attribute condition (CEL in Google; a predicate here). Absent: every token passes. */
  attributeCondition?: (assertion: JWTPayload) => boolean;
  disabled?: boolean;
}

export interface FederatedToken {
  provider: WorkloadIdentityProvider;
  /** `principal://iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/subject/<google.subject>` */
  principal: string;
  /** Mapped attributes, e.g. `{ 'google.subject': '…', 'attribute.repository': 'acme/app' }`. */
  attributes: Record<string, string>;
  scopes: string[];
  /** Epoch milliseconds. */
  expiresAt: number;
  revoked: boolean;
}

export interface StsRequestRecord {
  method: string;
  path: string;
  contentType: string;
  /** Parameters normalised to the form names, first value each. `subject_token` is sensitive. */
  params: Record<string, string>;
  /** Parameter names exactly as sent, in order, repeats included. */
  paramNames: string[];
  /** The raw Authorization header, if one was sent (Google says to send none). Sensitive. */
  authorization?: string;
  status: number;
  error?: string;
  errorDescription?: string;
}

export interface FakeGoogleStsOptions {
  providers: WorkloadIdentityProvider[];
  /** Upper bound of `expires_in` (Google: 3600). */
  maxLifetimeSeconds?: number;
  /** Leeway on `exp`/`iat` (measured ≈ 60 s). */
  clockSkewSeconds?: number;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
}

export interface FakeGoogleSts {
  /** e.g. `http://127.0.0.1:41234` (stands for `https://sts.googleapis.com`). */
  readonly url: string;
  /** `${url}/v1/token` */
  readonly tokenEndpoint: string;
  readonly providers: WorkloadIdentityProvider[];
  /** `//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`: the `audience` parameter. */
  audienceOf(provider: WorkloadIdentityProvider): string;
  /** `https://iam.googleapis.com/…/providers/<provider>`: the default allowed `aud` of the CI token. */
  defaultTokenAudience(provider: WorkloadIdentityProvider): string;
  /** The IAM principal of a `google.subject` in the provider's pool. */
  principalOf(provider: WorkloadIdentityProvider, subject: string): string;
  /** `principalSet://…/workloadIdentityPools/<pool>/attribute.<name>/<value>` */
  principalSetOf(provider: WorkloadIdentityProvider, attribute: string, value: string): string;
  readonly requests: StsRequestRecord[];
  /** Every federated token issued (sensitive). */
  readonly federatedTokens: Map<string, FederatedToken>;
  /** True for a live, unrevoked federated token (Vertex AI accepts these directly, without impersonation). */
  isValidAccessToken(token: string): Promise<boolean>;
  revokeAccessToken(token: string): void;
  close(): Promise<void>;
}

const AUDIENCE_FORMAT =
  /^\/\/iam\.googleapis\.com\/projects\/([^/]+)\/locations\/global\/workloadIdentityPools\/([^/]+)\/providers\/([^/]+)$/;
const JSON_NAMES: Record<string, string> = {
  grantType: "grant_type",
  requestedTokenType: "requested_token_type",
  subjectToken: "subject_token",
  subjectTokenType: "subject_token_type",
};
const OPTION_KEYS = new Set(["userProject", "audiences", "accessBoundary"]);

class StsRefusal extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
  }
}

const refuse = (error: string, description: string, status?: number): never => {
  throw new StsRefusal(error, description, status);
};

/** Form or JSON body → parameters under their form names; refuses what Google does not document (fake's own wording). */
function readParams(contentType: string, body: string, record: StsRequestRecord): Record<string, string> {
  let names: string[];
  let params: Record<string, string> = {};
  if (contentType === "application/x-www-form-urlencoded") {
    const form = parseForm(body);
    record.paramNames = form.names;
    record.params = form.params;
    if (form.repeated.length) refuse("invalid_request", `Parameter "${form.repeated[0]}" is included more than once.`);
    names = form.names;
    params = form.params;
  } else if (contentType === "application/json") {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      refuse("invalid_request", "The request body is not valid JSON.");
    }
    if (!isRecord(json)) return refuse("invalid_request", "The request body must be a JSON object.");
    names = Object.keys(json);
    for (const [name, value] of Object.entries(json))
      params[JSON_NAMES[name] ?? name] = typeof value === "string" ? value : JSON.stringify(value);
  } else {
    return refuse("invalid_request", `Unsupported content type "${contentType}": send application/x-www-form-urlencoded.`);
  }
  record.paramNames = names;
  record.params = params;
  const unknown = Object.keys(params).find((n) => !(STS_PARAMETERS as readonly string[]).includes(n));
  if (unknown)
    refuse(
      "invalid_request",
      `Unsupported parameter "${unknown}". This fake accepts only what Google documents for a workload identity federation exchange: ${STS_PARAMETERS.join(", ")}.`,
    );
  return params;
}

function checkOptions(options: string | undefined): void {
  if (options === undefined) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(options);
  } catch {
    refuse("invalid_request", 'Invalid value for "options": it must be a JSON object.');
  }
  if (!isRecord(parsed) || Object.keys(parsed).some((k) => !OPTION_KEYS.has(k))) {
    refuse("invalid_request", `Invalid value for "options": only ${[...OPTION_KEYS].join(", ")} are supported.`);
  }
}

/** Starts a fake Google STS on 127.0.0.1 (random port). */
export async function startFakeGoogleSts(opts: FakeGoogleStsOptions): Promise<FakeGoogleSts> {
  const now = opts.now ?? Date.now;
  const skew = opts.clockSkewSeconds ?? 60;
  const maxLifetime = opts.maxLifetimeSeconds ?? 3600;
  const keys = createIssuerKeyResolver(
    Object.fromEntries(opts.providers.filter((p) => p.jwksUri).map((p) => [p.issuerUri, p.jwksUri as string])),
  );
  const requests: StsRequestRecord[] = [];
  const federatedTokens = new Map<string, FederatedToken>();
  const server = createServer();
  const { port } = await listen(server);
  const url = `http://127.0.0.1:${port}`;

  const resourceOf = (p: WorkloadIdentityProvider): string =>
    `projects/${p.projectNumber}/locations/global/workloadIdentityPools/${p.poolId}/providers/${p.providerId}`;
  const poolOf = (p: WorkloadIdentityProvider): string =>
    `iam.googleapis.com/projects/${p.projectNumber}/locations/global/workloadIdentityPools/${p.poolId}`;

  async function verifySubjectToken(token: string, provider: WorkloadIdentityProvider): Promise<JWTPayload> {
    let claims: JWTPayload;
    let alg: string | undefined;
    try {
      claims = decodeJwt(token);
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return refuse("invalid_grant", "Unable to parse the ID Token."); // fake's own wording
    }
    if (claims.iss !== provider.issuerUri)
      refuse("invalid_grant", `The issuer in ID Token ${claims.iss ?? "null"} does not match the expected one in config`);
    if (alg !== "RS256" && alg !== "ES256") refuse("invalid_grant", "Error connecting to the given credential's issuer."); // Google accepts RS256/ES256 only
    try {
      // Only the signature here: time is checked below with Google's skew and message.
      await compactVerify(token, await keys.keysFor(provider.issuerUri), { algorithms: ["RS256", "ES256"] });
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) refuse("invalid_grant", "Unable to verify the ID Token signature.");
      refuse("invalid_grant", "Error connecting to the given credential's issuer.");
    }
    const nowSeconds = now() / 1000;
    const stale =
      typeof claims.iat !== "number" || typeof claims.exp !== "number" || claims.exp < nowSeconds - skew || claims.iat > nowSeconds + skew;
    if (stale) refuse("invalid_grant", `ID Token issued at ${claims.iat ?? "null"} is stale to sign-in.`);
    const auds = typeof claims.aud === "string" ? [claims.aud] : (claims.aud ?? []);
    const allowed = provider.allowedAudiences?.length
      ? provider.allowedAudiences
      : [`//iam.googleapis.com/${resourceOf(provider)}`, `https://iam.googleapis.com/${resourceOf(provider)}`];
    if (!auds.some((a) => allowed.includes(a)))
      refuse("invalid_grant", `The audience in ID Token [${auds.join(", ")}] does not match the expected audience.`);
    return claims;
  }

  async function exchange(params: Record<string, string>): Promise<Record<string, unknown>> {
    const grantType = params["grant_type"];
    if (grantType !== STS_GRANT_TYPE) refuse("unsupported_grant_type", `Invalid value for "grant_type": expected "${STS_GRANT_TYPE}".`); // fake's own wording
    const audience = params["audience"] ?? "";
    const match = AUDIENCE_FORMAT.exec(audience);
    if (!match) {
      refuse(
        "invalid_request",
        'Invalid value for "audience". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.',
      );
    }
    const [, projectNumber, poolId, providerId] = match as RegExpExecArray;
    const provider = opts.providers.find((p) => p.projectNumber === projectNumber && p.poolId === poolId && p.providerId === providerId);
    if (!provider || provider.disabled) {
      refuse(
        "invalid_target",
        `The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.`,
      );
    }
    const p = provider as WorkloadIdentityProvider;
    // Fake's own wording for the next four: Google documents the rule, not the message.
    if (params["requested_token_type"] !== STS_TOKEN_TYPE_ACCESS_TOKEN)
      refuse("invalid_request", `Invalid value for "requested_token_type": expected "${STS_TOKEN_TYPE_ACCESS_TOKEN}".`);
    const subjectTokenType = params["subject_token_type"];
    if (subjectTokenType !== STS_TOKEN_TYPE_JWT && subjectTokenType !== STS_TOKEN_TYPE_ID_TOKEN) {
      refuse(
        "invalid_request",
        `Invalid value for "subject_token_type": an OIDC provider takes "${STS_TOKEN_TYPE_JWT}" or "${STS_TOKEN_TYPE_ID_TOKEN}".`,
      );
    }
    const scopes = (params["scope"] ?? "").split(/\s+/).filter(Boolean);
    if (!scopes.length) refuse("invalid_request", 'Missing "scope": it is required when exchanging an external credential.');
    const subjectToken = params["subject_token"];
    if (!subjectToken) refuse("invalid_request", 'Missing "subject_token".');
    checkOptions(params["options"]);

    const claims = await verifySubjectToken(subjectToken as string, p);
    if (p.attributeCondition && !p.attributeCondition(claims))
      refuse("unauthorized_client", "The given credential is rejected by the attribute condition.");
    const mapped = p.attributeMapping
      ? p.attributeMapping(claims)
      : { "google.subject": typeof claims.sub === "string" ? claims.sub : undefined };
    const attributes = Object.fromEntries(Object.entries(mapped).filter((e): e is [string, string] => typeof e[1] === "string"));
    const subject = attributes["google.subject"];
    if (!subject || Buffer.byteLength(subject) > 127)
      refuse("invalid_grant", 'The mapped attribute "google.subject" must be present and at most 127 bytes.'); // fake's own

    const expiresIn = Math.max(1, Math.min(maxLifetime, Math.floor((claims.exp as number) - now() / 1000)));
    const token = opaqueToken("ya29.d.");
    federatedTokens.set(token, {
      provider: p,
      principal: `principal://${poolOf(p)}/subject/${subject as string}`,
      attributes,
      scopes,
      expiresAt: now() + expiresIn * 1000,
      revoked: false,
    });
    return { access_token: token, issued_token_type: STS_TOKEN_TYPE_ACCESS_TOKEN, token_type: "Bearer", expires_in: expiresIn };
  }

  async function route(req: IncomingMessage, res: ServerResponse, record: StsRequestRecord): Promise<void> {
    if (record.path !== "/v1/token") return refuse("not_found", `no such endpoint: ${record.path}`, 404);
    if (req.method !== "POST") return refuse("invalid_request", `${req.method ?? ""} is not allowed; use POST.`, 405);
    const params = readParams(record.contentType, await readBody(req), record);
    if (record.authorization !== undefined)
      refuse("invalid_request", "The request carries an Authorization header; Google documents that v1/token takes none.");
    const body = await exchange(params);
    record.status = 200;
    sendJson(res, 200, body, { "cache-control": "no-cache, no-store, max-age=0, must-revalidate" });
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const record: StsRequestRecord = {
      method: req.method ?? "GET",
      path: new URL(req.url ?? "/", url).pathname,
      contentType: mediaType(req),
      params: {},
      paramNames: [],
      status: 0,
    };
    if (req.headers.authorization !== undefined) record.authorization = req.headers.authorization;
    requests.push(record);
    route(req, res, record).catch((err: unknown) => {
      const refusal =
        err instanceof StsRefusal ? err : new StsRefusal("server_error", err instanceof Error ? err.message : "fake STS failed", 500);
      record.status = refusal.status;
      record.error = refusal.error;
      record.errorDescription = refusal.description;
      if (!res.headersSent) sendJson(res, refusal.status, { error: refusal.error, error_description: refusal.description });
    });
  });

  return {
    url,
    tokenEndpoint: `${url}/v1/token`,
    providers: opts.providers,
    audienceOf: (p) => `//iam.googleapis.com/${resourceOf(p)}`,
    defaultTokenAudience: (p) => `https://iam.googleapis.com/${resourceOf(p)}`,
    principalOf: (p, subject) => `principal://${poolOf(p)}/subject/${subject}`,
    principalSetOf: (p, attribute, value) => `principalSet://${poolOf(p)}/attribute.${attribute}/${value}`,
    requests,
    federatedTokens,
    async isValidAccessToken(token) {
      const found = federatedTokens.get(token);
      return found !== undefined && !found.revoked && found.expiresAt > now();
    },
    revokeAccessToken(token) {
      const found = federatedTokens.get(token);
      if (found) found.revoked = true;
    },
    close: () => closeServer(server),
  };
}
