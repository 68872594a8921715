/**
 * A fake Microsoft Entra ID on 127.0.0.1 for tests: v2.0 discovery and the token endpoint's client credentials grant
 * with a federated client assertion (workload identity federation), answered with Entra's real error shape and
 * AADSTS codes. The real service is never reached; see /work/notes/cloud-research.md for every source.
 *
 * - `GET /{tenant}/v2.0/.well-known/openid-configuration`: tenant by GUID or verified domain; every URL carries the
 *   tenant GUID, as Entra's do. `common`/`organizations` answer the `{tenantid}` template issuer.
 * - `POST /{tenant}/oauth2/v2.0/token`: `grant_type=client_credentials`, `client_id`, `scope=<resource>/.default`,
 *   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, `client_assertion=<CI JWT>`.
 *   The assertion is verified against its issuer's JWKS (via the issuer's discovery) and matched exactly against
 *   the app's federated identity credentials (entra-assertion.ts).
 * - `GET /{tenant}/discovery/v2.0/keys`: the keys of the access tokens it issues (RS256 JWTs).
 *
 * Requests are recorded with their parameters (assertions included: sensitive, memory only, never printed).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";

import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from "jose";
import type { JWK, JWTPayload } from "jose";

import { closeServer, listen, mediaType, parseForm, readBody, sendJson } from "./cloud-http.js";
import { checkAssertion } from "./entra-assertion.js";
import type { FederatedIdentityCredential } from "./entra-assertion.js";
import { aadsts, entraErrorBody } from "./entra-errors.js";
import type { EntraError } from "./entra-errors.js";
import { createIssuerKeyResolver } from "./oidc-issuer-keys.js";

export type { FederatedIdentityCredential } from "./entra-assertion.js";

/** Entra's recommended audience for the external token (FIC `audiences`). */
export const AZURE_AD_TOKEN_EXCHANGE = "api://AzureADTokenExchange";
export const CLIENT_ASSERTION_TYPE_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** The resource behind Azure OpenAI's scope `https://cognitiveservices.azure.com/.default`. */
export const COGNITIVE_SERVICES = "https://cognitiveservices.azure.com";

export interface EntraApplication {
  /** Application (client) ID. */
  clientId: string;
  displayName?: string;
  /** The service principal's object ID (`oid`/`sub` of its tokens). Default: random. */
  objectId?: string;
  /** Live list: tests may add or remove credentials while the fake runs. */
  federatedIdentityCredentials: FederatedIdentityCredential[];
}

export interface EntraTenant {
  /** Tenant GUID. */
  tenantId: string;
  /** Shown as the directory name in AADSTS700016/500011. Default `Contoso`. */
  displayName?: string;
  /** Verified domains that also name the tenant in URLs, e.g. `contoso.onmicrosoft.com`. */
  domains?: string[];
  /** Resources (app ID URIs) with a service principal in the tenant. Default `[COGNITIVE_SERVICES]`. */
  resources?: string[];
  applications: EntraApplication[];
}

export interface FakeEntraOptions {
  tenants: EntraTenant[];
  /** Issuer → JWKS URL, skipping the issuer's discovery (default: discovery, as Entra does). */
  issuerJwksUris?: Record<string, string>;
  /** `expires_in` of issued tokens. Default 3599. */
  accessTokenLifetimeSeconds?: number;
  /** Access token format: v1 (`appid`, `iss` sts.windows.net; what Cognitive Services gets) or v2 (`azp`). Default 1. */
  accessTokenVersion?: 1 | 2;
  /** Leeway on the assertion's `exp`/`nbf`. Entra documents none; default 0. */
  clockToleranceSeconds?: number;
  /** Before `Trace ID:` in `error_description`: one space (since 2024, default) or `\r\n` (docs, older responses). */
  descriptionLineBreak?: " " | "\r\n";
  /** `legacy`: answer every credential mismatch with AADSTS70021 instead of 700211/700212/700213/7002138. */
  noMatchStyle?: "specific" | "legacy";
  /** Clock in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
}

export interface EntraRequestRecord {
  method: string;
  path: string;
  /** The tenant segment of the URL as sent (GUID, domain or `common`). */
  tenant?: string;
  contentType: string;
  /** Form parameters, first value each. `client_assertion` is sensitive: never print it. */
  params: Record<string, string>;
  /** Parameter names in the order sent, repeats included. */
  paramNames: string[];
  clientRequestId?: string;
  status: number;
  error?: string;
  errorCodes?: number[];
  errorDescription?: string;
}

export interface IssuedEntraToken {
  tenantId: string;
  clientId: string;
  resource: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  revoked: boolean;
}

export interface FakeEntra {
  /** Authority host, e.g. `http://127.0.0.1:41234` (stands for `https://login.microsoftonline.com`). */
  readonly url: string;
  readonly tenants: EntraTenant[];
  /** `${url}/${tenant}/v2.0`: what a client configures as issuer for discovery. */
  authority(tenant: string): string;
  discoveryUrl(tenant: string): string;
  tokenEndpoint(tenant: string): string;
  /** The `issuer` in discovery: `${url}/${tenantId}/v2.0` (GUID). */
  issuerOf(tenantId: string): string;
  readonly requests: EntraRequestRecord[];
  /** Every access token issued (sensitive). */
  readonly issuedTokens: Map<string, IssuedEntraToken>;
  /** True for a live, unrevoked token this fake issued, signed by it, for `audience` when given. */
  isValidAccessToken(token: string, audience?: string): Promise<boolean>;
  revokeAccessToken(token: string): void;
  close(): Promise<void>;
}

const ALG = "RS256";
const TENANT_ALIASES = new Set(["common", "organizations", "consumers"]);
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

/** Starts a fake Entra ID on 127.0.0.1 (random port). */
export async function startFakeEntra(opts: FakeEntraOptions): Promise<FakeEntra> {
  const now = opts.now ?? Date.now;
  const lifetime = opts.accessTokenLifetimeSeconds ?? 3599;
  const version = opts.accessTokenVersion ?? 1;
  const lineBreak = opts.descriptionLineBreak ?? " ";
  const keys = createIssuerKeyResolver(opts.issuerJwksUris);
  const kid = randomBytes(16).toString("base64url");
  const signing = await generateKeyPair(ALG, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(signing.publicKey)), kid, use: "sig", alg: ALG };
  const localKeys = createLocalJWKSet({ keys: [publicJwk] });
  const objectIds = new Map<EntraApplication, string>();

  const requests: EntraRequestRecord[] = [];
  const issuedTokens = new Map<string, IssuedEntraToken>();
  const server = createServer();
  const { port } = await listen(server);
  const url = `http://127.0.0.1:${port}`;
  const issuerOf = (tenantId: string): string => `${url}/${tenantId}/v2.0`;
  const v1Issuer = (tenantId: string): string => `https://sts.windows.net/${tenantId}/`;

  function findTenant(segment: string): EntraTenant | undefined {
    const lower = segment.toLowerCase();
    return opts.tenants.find((t) => t.tenantId.toLowerCase() === lower || (t.domains ?? []).some((d) => d.toLowerCase() === lower));
  }

  /** The tenant for a URL segment, or the error Entra gives for it. */
  function resolveTenant(segment: string, notFoundError: string): EntraTenant | EntraError {
    if (TENANT_ALIASES.has(segment.toLowerCase())) return aadsts.noTenantInformation();
    if (!GUID.test(segment) && !DNS_NAME.test(segment)) return aadsts.tenantIdentifierInvalid(segment);
    return findTenant(segment) ?? aadsts.tenantNotFound(segment, notFoundError);
  }

  function discoveryDocument(base: string, issuer: string): Record<string, unknown> {
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: [ALG],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer,
      request_uri_parameter_supported: false,
      userinfo_endpoint: "https://graph.microsoft.com/oidc/userinfo",
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "acr",
        "nonce",
        "preferred_username",
        "name",
        "tid",
        "ver",
        "at_hash",
        "c_hash",
        "email",
      ],
      cloud_instance_name: "microsoftonline.com",
      msgraph_host: "graph.microsoft.com",
    };
  }

  function sendError(res: ServerResponse, record: EntraRequestRecord, err: EntraError): void {
    const { body, traceId } = entraErrorBody(err, {
      now: now(),
      lineBreak,
      ...(record.clientRequestId ? { correlationId: record.clientRequestId } : {}),
    });
    record.status = err.status;
    record.error = err.error;
    record.errorCodes = [err.code];
    record.errorDescription = String(body["error_description"]);
    sendJson(res, err.status, body, { "cache-control": "no-store, no-cache", pragma: "no-cache", "x-ms-request-id": traceId });
  }

  async function issueAccessToken(tenant: EntraTenant, app: EntraApplication, resource: string): Promise<string> {
    const iat = Math.floor(now() / 1000);
    let oid = app.objectId ?? objectIds.get(app);
    if (!oid) {
      oid = randomUUID();
      objectIds.set(app, oid);
    }
    const common = {
      aud: resource,
      iat,
      nbf: iat,
      exp: iat + lifetime,
      oid,
      sub: oid,
      tid: tenant.tenantId,
      idtyp: "app",
      uti: randomBytes(16).toString("base64url"),
      roles: [] as string[],
    };
    const claims: JWTPayload =
      version === 1
        ? { ...common, iss: v1Issuer(tenant.tenantId), idp: v1Issuer(tenant.tenantId), appid: app.clientId, appidacr: "2", ver: "1.0" }
        : { ...common, iss: issuerOf(tenant.tenantId), azp: app.clientId, azpacr: "2", ver: "2.0" };
    const token = await new SignJWT(claims).setProtectedHeader({ typ: "JWT", alg: ALG, kid }).sign(signing.privateKey);
    issuedTokens.set(token, {
      tenantId: tenant.tenantId,
      clientId: app.clientId,
      resource,
      expiresAt: (iat + lifetime) * 1000,
      revoked: false,
    });
    return token;
  }

  /** Checks in the order Entra reports them (tenant, parameters, client, scope, resource, assertion). */
  async function tokenRequest(
    tenant: EntraTenant,
    params: Record<string, string>,
  ): Promise<EntraError | { resource: string; app: EntraApplication }> {
    const grantType = params["grant_type"];
    if (!grantType) return aadsts.missingParameter("grant_type");
    if (grantType !== "client_credentials") return aadsts.unsupportedGrantType(grantType);
    const clientId = params["client_id"];
    if (!clientId) return aadsts.missingParameter("client_id");
    const directory = tenant.displayName ?? "Contoso";
    const app = tenant.applications.find((a) => a.clientId.toLowerCase() === clientId.toLowerCase());
    if (!app) return aadsts.applicationNotFound(clientId, directory);
    if (params["client_secret"] !== undefined) return aadsts.invalidClientSecret(clientId);
    const assertion = params["client_assertion"];
    if (!assertion) return aadsts.missingClientCredential();
    const assertionType = params["client_assertion_type"];
    if (!assertionType) return aadsts.missingParameter("client_assertion_type");
    if (assertionType !== CLIENT_ASSERTION_TYPE_JWT_BEARER) return aadsts.invalidAssertionType();
    const scope = params["scope"];
    if (!scope) return aadsts.missingParameter("scope");
    const scopes = scope.split(/\s+/).filter(Boolean);
    if (scopes.some((s) => !s.endsWith("/.default"))) return aadsts.scopeNotDefault(scope);
    if (scopes.length !== 1) return aadsts.scopeSeveralResources(scope);
    const resource = (scopes[0] ?? "").slice(0, -"/.default".length);
    if (!(tenant.resources ?? [COGNITIVE_SERVICES]).includes(resource)) return aadsts.resourceNotFound(resource, directory);
    const result = await checkAssertion(assertion, {
      credentials: app.federatedIdentityCredentials,
      keys,
      now: now(),
      clockToleranceSeconds: opts.clockToleranceSeconds ?? 0,
      noMatchStyle: opts.noMatchStyle ?? "specific",
    });
    return result.ok ? { resource, app } : result.failure;
  }

  async function route(req: IncomingMessage, res: ServerResponse, record: EntraRequestRecord): Promise<void> {
    const segments = record.path.split("/").filter(Boolean);
    const [tenantSegment, ...rest] = segments;
    const tail = rest.join("/");
    if (tenantSegment) record.tenant = tenantSegment;

    if (tenantSegment && tail === "v2.0/.well-known/openid-configuration" && req.method === "GET") {
      const alias = TENANT_ALIASES.has(tenantSegment.toLowerCase());
      const tenant = alias ? undefined : resolveTenant(tenantSegment, "invalid_tenant");
      if (tenant && "error" in tenant) return sendError(res, record, tenant);
      const id = tenant ? tenant.tenantId : tenantSegment.toLowerCase();
      record.status = 200;
      return sendJson(res, 200, discoveryDocument(`${url}/${id}`, alias ? `${url}/{tenantid}/v2.0` : issuerOf(id)));
    }
    if (tenantSegment && tail === "discovery/v2.0/keys" && req.method === "GET") {
      record.status = 200;
      return sendJson(res, 200, { keys: [publicJwk] });
    }
    if (tenantSegment && tail === "oauth2/v2.0/token") {
      if (req.method !== "POST") return sendError(res, record, aadsts.postOnly(req.method ?? "GET"));
      // Entra reads only form bodies: anything else arrives as no parameters at all (AADSTS900144 'grant_type').
      const body = await readBody(req);
      const form = parseForm(record.contentType === "application/x-www-form-urlencoded" ? body : "");
      record.params = form.params;
      record.paramNames = form.names;
      const tenant = resolveTenant(tenantSegment, "invalid_request");
      if ("error" in tenant) return sendError(res, record, tenant);
      const outcome = await tokenRequest(tenant, form.params);
      if ("error" in outcome) return sendError(res, record, outcome);
      const accessToken = await issueAccessToken(tenant, outcome.app, outcome.resource);
      record.status = 200;
      return sendJson(
        res,
        200,
        { token_type: "Bearer", expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken },
        { "cache-control": "no-store, no-cache", pragma: "no-cache" },
      );
    }
    record.status = 404;
    sendJson(res, 404, { error: "not_found", error_description: `no such endpoint: ${req.method ?? ""} ${record.path}` });
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", url).pathname;
    const record: EntraRequestRecord = {
      method: req.method ?? "GET",
      path,
      contentType: mediaType(req),
      params: {},
      paramNames: [],
      status: 0,
    };
    const clientRequestId = req.headers["client-request-id"];
    if (typeof clientRequestId === "string") record.clientRequestId = clientRequestId;
    requests.push(record);
    route(req, res, record).catch((err: unknown) => {
      record.status = 500;
      if (!res.headersSent)
        sendJson(res, 500, { error: "server_error", error_description: err instanceof Error ? err.message : "fake Entra failed" });
    });
  });

  return {
    url,
    tenants: opts.tenants,
    authority: (tenant) => `${url}/${tenant}/v2.0`,
    discoveryUrl: (tenant) => `${url}/${tenant}/v2.0/.well-known/openid-configuration`,
    tokenEndpoint: (tenant) => `${url}/${tenant}/oauth2/v2.0/token`,
    issuerOf,
    requests,
    issuedTokens,
    async isValidAccessToken(token, audience) {
      const issued = issuedTokens.get(token);
      if (!issued || issued.revoked || issued.expiresAt <= now()) return false;
      try {
        const { payload } = await jwtVerify(token, localKeys, {
          algorithms: [ALG],
          issuer: version === 1 ? v1Issuer(issued.tenantId) : issuerOf(issued.tenantId),
          currentDate: new Date(now()),
          ...(audience ? { audience } : {}),
        });
        return payload.tid === issued.tenantId;
      } catch {
        return false;
      }
    },
    revokeAccessToken(token) {
      const issued = issuedTokens.get(token);
      if (issued) issued.revoked = true;
    },
    close: () => closeServer(server),
  };
}
