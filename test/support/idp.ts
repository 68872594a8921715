/**
 * A real oidc-provider 9 authorization server on 127.0.0.1 for tests.
 *
 * It accepts a CI job's OIDC token through two custom grants at `/token`:
 * RFC 7523 jwt-bearer (`assertion`) and RFC 8693 token-exchange (`subject_token`).
 * Both verify the CI JWT against the CI issuer's JWKS (issuer, audience, expiry)
 * and allow only listed repositories. Refusals are OAuth errors whose
 * `error_description` the client actually sees. Access tokens are opaque and can be
 * checked with {@link Idp.isValidAccessToken}. Nothing here prints a token.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

import { createRemoteJWKSet, errors as joseErrors, exportJWK, exportPKCS8, generateKeyPair, jwtVerify } from "jose";
import type { JWK, JWTPayload } from "jose";

import { createMemoryAdapter } from "./oidc-memory-adapter.js";
import type { KoaContext, OidcContext, OidcError, OidcParams, OidcProviderModule, ProviderInstance } from "./oidc-provider-types.js";

export const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt";
export const TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token";
export const TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";

/** Scopes the IdP grants (anything else is `invalid_scope`). */
export const IDP_SCOPES = ["openid", "models.read"] as const;

export interface IdpOptions {
  /** `iss` the CI tokens must carry. */
  ciIssuer: string;
  /** Where the CI issuer's JWKS lives. */
  ciJwksUrl: string;
  /** Access token lifetime in seconds (`expires_in`). Default 600. */
  accessTokenTtl?: number;
  /** Values of the `repository` (GitHub) or `project_path` (GitLab) claim that are allowed. Default `['acme/app']`. */
  allowedRepositories?: string[];
  /** `aud` the CI tokens must carry. Default: the IdP's own issuer URL. */
  expectedAudience?: string;
  /** Refuse a CI token whose `jti` was already used (off by default: GitLab/file/env tokens are reused within a job). */
  rejectReplayedAssertions?: boolean;
  /**
   * Issuer URL to announce instead of the server's own `http://127.0.0.1:PORT` (e.g. a fault proxy's URL in front
   * of it). The http server still listens on its own port ({@link Idp.serverUrl}). Endpoint URLs in discovery are
   * built by oidc-provider from the request's Host header, so a proxy must forward Host unchanged.
   */
  issuer?: string;
}

export interface GrantRecord {
  grantType: string;
  clientId: string;
  ok: boolean;
  /** OAuth `error` code on refusal. */
  error?: string;
  /** OAuth `error_description` on refusal, as the client saw it. */
  errorDescription?: string;
  /** Token exchange `audience` (several values joined by a space). */
  audience?: string;
  /** Token exchange `resource` (several values joined by a space). */
  resource?: string;
  /** The requested scope. */
  scope?: string;
  /** The CI token's repository, once verified. */
  repository?: string;
}

export interface Idp {
  /** e.g. `http://127.0.0.1:41235` — exactly the discovery document's `issuer`. */
  readonly issuer: string;
  /** `${issuer}/token` */
  readonly tokenEndpoint: string;
  /** Where the http server really listens, e.g. `http://127.0.0.1:41235`; equals {@link Idp.issuer} unless `issuer` was given. */
  readonly serverUrl: string;
  /** Every request to the token endpoint, in order. */
  readonly grants: GrantRecord[];
  /** Every access token value issued (sensitive: never print). */
  readonly issuedTokens: Set<string>;
  /** Client secrets of `ci-post` (client_secret_post) and `ci-basic` (client_secret_basic). */
  readonly secrets: { readonly post: string; readonly basic: string };
  /** PKCS#8 PEM of the ES256 private key registered for `ci-pkjwt` (private_key_jwt). */
  readonly privateKeyPem: string;
  /** `kid` of that key. */
  readonly privateKeyKid: string;
  /** True when the IdP issued `token` and it has not expired or been revoked. */
  isValidAccessToken(token: string): Promise<boolean>;
  /** Revokes one issued access token (the model server then answers 401). */
  revokeAccessToken(token: string): Promise<void>;
  /** Lifetime of access tokens issued from now on. */
  setAccessTokenTtl(seconds: number): void;
  close(): Promise<void>;
}

/** Client ids registered at the IdP. */
export const IDP_CLIENTS = {
  none: "opencode-ci",
  post: "ci-post",
  basic: "ci-basic",
  privateKeyJwt: "ci-pkjwt",
  noExchange: "no-exchange",
} as const;

let providerModule: Promise<OidcProviderModule> | undefined;

/**
 * Imports oidc-provider once, dropping only its "Unsupported runtime" warning
 * (it is printed at module evaluation on Node < 22). Every other console.warn passes through.
 * The specifier is a variable because the package ships no type declarations.
 */
function loadOidcProvider(): Promise<OidcProviderModule> {
  providerModule ??= (async () => {
    const specifier = "oidc-provider";
    const original = console.warn;
    console.warn = (...args: unknown[]): void => {
      const [first] = args;
      if (typeof first === "string" && first.includes("oidc-provider WARNING: Unsupported runtime")) return;
      original.apply(console, args);
    };
    try {
      return (await import(specifier)) as OidcProviderModule;
    } finally {
      console.warn = original;
    }
  })();
  return providerModule;
}

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function one(params: OidcParams | undefined, name: string): string | undefined {
  const value = params?.[name];
  if (Array.isArray(value)) return value.join(" ");
  return value === undefined || value === "" ? undefined : value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Client id from the verified client, the client_id param, or a Basic header. */
function clientIdOf(ctx: KoaContext): string {
  const oidc = ctx.oidc;
  if (oidc?.client) return oidc.client.clientId;
  const fromParams = one(oidc?.params, "client_id");
  if (fromParams) return fromParams;
  const header = ctx.get("authorization");
  if (header.toLowerCase().startsWith("basic ")) {
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) return decodeURIComponent(decoded.slice(0, colon));
  }
  return "";
}

/** Starts a real oidc-provider authorization server on 127.0.0.1 (random port). */
export async function startIdp(opts: IdpOptions): Promise<Idp> {
  const { default: Provider, errors } = await loadOidcProvider();

  let accessTokenTtl = opts.accessTokenTtl ?? 600;
  const allowed = new Set(opts.allowedRepositories ?? ["acme/app"]);
  const ciJwks = createRemoteJWKSet(new URL(opts.ciJwksUrl));
  const seenJti = new Set<string>();
  const grants: GrantRecord[] = [];
  const issuedTokens = new Set<string>();

  const [signing, clientKey] = await Promise.all([
    generateKeyPair("ES256", { extractable: true }),
    generateKeyPair("ES256", { extractable: true }),
  ]);
  const signingJwk: JWK = { ...(await exportJWK(signing.privateKey)), kid: "idp-sig-1", alg: "ES256", use: "sig" };
  const privateKeyKid = `ci-pkjwt-${randomBytes(4).toString("hex")}`;
  const clientPublicJwk: JWK = { ...(await exportJWK(clientKey.publicKey)), kid: privateKeyKid, alg: "ES256", use: "sig" };
  const privateKeyPem = await exportPKCS8(clientKey.privateKey);
  const secrets = { post: randomBytes(24).toString("base64url"), basic: randomBytes(24).toString("base64url") };

  const server = createServer();
  const { port } = await listen(server);
  const serverUrl = `http://127.0.0.1:${port}`;
  const issuer = opts.issuer ?? serverUrl;
  const expectedAudience = opts.expectedAudience ?? issuer;

  const machine = { response_types: [], redirect_uris: [], id_token_signed_response_alg: "ES256" };
  const bothGrants = [JWT_BEARER, TOKEN_EXCHANGE];
  const provider: ProviderInstance = new Provider(issuer, {
    adapter: createMemoryAdapter(),
    jwks: { keys: [signingJwk] },
    scopes: [...IDP_SCOPES],
    clients: [
      { ...machine, client_id: IDP_CLIENTS.none, token_endpoint_auth_method: "none", grant_types: bothGrants },
      {
        ...machine,
        client_id: IDP_CLIENTS.post,
        client_secret: secrets.post,
        token_endpoint_auth_method: "client_secret_post",
        grant_types: bothGrants,
      },
      {
        ...machine,
        client_id: IDP_CLIENTS.basic,
        client_secret: secrets.basic,
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: bothGrants,
      },
      {
        ...machine,
        client_id: IDP_CLIENTS.privateKeyJwt,
        token_endpoint_auth_method: "private_key_jwt",
        token_endpoint_auth_signing_alg: "ES256",
        jwks: { keys: [clientPublicJwk] },
        grant_types: bothGrants,
      },
      { ...machine, client_id: IDP_CLIENTS.noExchange, token_endpoint_auth_method: "none", grant_types: [JWT_BEARER] },
    ],
    features: {
      devInteractions: { enabled: false },
      // On by default, and the default getResourceServerInfo throws invalid_target. Our grants
      // never bind tokens to a resource server, but keep the hook harmless should anything call it.
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => ({
          scope: IDP_SCOPES.join(" "),
          audience: resourceIndicator,
          accessTokenFormat: "opaque",
        }),
      },
    },
    ttl: { AccessToken: () => accessTokenTtl },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
  });

  /** An `invalid_grant` whose description reaches the client (the constructor's argument alone is hidden). */
  function invalidGrant(description: string): OidcError {
    const err = new errors.InvalidGrant(description);
    err.error_description = description;
    return err;
  }

  function describeVerifyError(err: unknown, label: string): string {
    if (err instanceof joseErrors.JWTExpired) return `${label} expired`;
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === "aud") return `${label} audience mismatch`;
      if (err.claim === "iss") return `${label} issuer mismatch`;
      if (err.claim === "nbf" || err.claim === "iat") return `${label} is not yet valid`;
      return `${label} claim ${err.claim} is invalid`;
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey) {
      return `${label} signature could not be verified`;
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return `${label} algorithm is not allowed`;
    if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return `${label} is not a valid JWT`;
    return `${label} could not be verified`;
  }

  /** Verifies a CI token and its repository; throws `invalid_grant` with a client-visible description. */
  async function verifyCiToken(jwt: string, label: string, ctx: KoaContext): Promise<JWTPayload & { sub: string }> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, ciJwks, {
        issuer: opts.ciIssuer,
        audience: expectedAudience,
        algorithms: ["ES256", "RS256", "PS256", "EdDSA", "Ed25519"],
        requiredClaims: ["exp", "sub"],
        clockTolerance: 0,
      }));
    } catch (err) {
      throw invalidGrant(describeVerifyError(err, label));
    }
    const repository = payload["repository"] ?? payload["project_path"];
    if (typeof repository !== "string") throw invalidGrant(`${label} has no repository claim`);
    ctx.state["ciRepository"] = repository;
    if (!allowed.has(repository)) throw invalidGrant(`repository ${repository} is not allowed`);
    if (opts.rejectReplayedAssertions && typeof payload.jti === "string") {
      if (seenJti.has(payload.jti)) throw invalidGrant(`${label} has already been used`);
      seenJti.add(payload.jti);
    }
    return payload as JWTPayload & { sub: string };
  }

  function grantedScope(params: OidcParams): string | undefined {
    const requested = (one(params, "scope") ?? "").split(" ").filter(Boolean);
    const unknown = requested.filter((s) => !(IDP_SCOPES as readonly string[]).includes(s));
    if (unknown.length) throw new errors.InvalidScope("requested scope is not allowed", unknown.join(" "));
    return requested.length ? [...new Set(requested)].join(" ") : undefined;
  }

  async function issueAccessToken(oidc: OidcContext, sub: string, gty: string, scope: string | undefined, repository: string) {
    const client = oidc.client;
    if (!client) throw new errors.InvalidRequest("client is not authenticated");
    const token = new provider.AccessToken({
      client,
      accountId: sub,
      gty,
      ...(scope ? { scope } : {}),
      extra: { repository },
    });
    oidc.entity("AccessToken", token);
    const value = await token.save();
    issuedTokens.add(value);
    return { access_token: value, token_type: "Bearer", expires_in: token.expiration, ...(scope ? { scope } : {}) };
  }

  provider.registerGrantType(
    JWT_BEARER,
    async (ctx) => {
      const params = ctx.oidc.params ?? {};
      const assertion = one(params, "assertion");
      if (!assertion) throw new errors.InvalidRequest("missing required parameter assertion");
      const scope = grantedScope(params);
      const payload = await verifyCiToken(assertion, "assertion", ctx);
      ctx.body = await issueAccessToken(ctx.oidc, payload.sub, "jwt_bearer", scope, String(ctx.state["ciRepository"]));
    },
    ["assertion", "scope"],
  );

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx) => {
      const params = ctx.oidc.params ?? {};
      const subjectToken = one(params, "subject_token");
      if (!subjectToken) throw new errors.InvalidRequest("missing required parameter subject_token");
      const subjectTokenType = one(params, "subject_token_type");
      if (!subjectTokenType) throw new errors.InvalidRequest("missing required parameter subject_token_type");
      if (subjectTokenType !== TOKEN_TYPE_JWT && subjectTokenType !== TOKEN_TYPE_ID_TOKEN) {
        throw new errors.InvalidRequest(`unsupported subject_token_type ${subjectTokenType}`);
      }
      const requested = one(params, "requested_token_type");
      if (requested !== undefined && requested !== TOKEN_TYPE_ACCESS_TOKEN) {
        throw new errors.InvalidRequest(`unsupported requested_token_type ${requested}`);
      }
      const scope = grantedScope(params);
      const payload = await verifyCiToken(subjectToken, "subject_token", ctx);
      const body = await issueAccessToken(ctx.oidc, payload.sub, "token_exchange", scope, String(ctx.state["ciRepository"]));
      ctx.body = { ...body, issued_token_type: TOKEN_TYPE_ACCESS_TOKEN };
    },
    ["subject_token", "subject_token_type", "audience", "resource", "requested_token_type", "scope"],
    ["audience", "resource"],
  );

  // Outermost middleware on the token endpoint: records every grant request and, per RFC 6749 §5.2,
  // turns oidc-provider's `invalid_request` for a grant type the client may not use into `unauthorized_client`.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method !== "POST" || ctx.path !== "/token") return;
    const params = ctx.oidc?.params;
    const grantType = one(params, "grant_type") ?? "";
    const client = ctx.oidc?.client;
    if (ctx.status === 400 && client && grantType && !client.grantTypeAllowed(grantType) && isRecord(ctx.body)) {
      ctx.body = {
        error: "unauthorized_client",
        error_description: `client ${client.clientId} is not allowed to use grant type ${grantType}`,
      };
    }
    const record: GrantRecord = { grantType, clientId: clientIdOf(ctx), ok: ctx.status === 200 };
    if (!record.ok && isRecord(ctx.body)) {
      if (typeof ctx.body["error"] === "string") record.error = ctx.body["error"];
      if (typeof ctx.body["error_description"] === "string") record.errorDescription = ctx.body["error_description"];
    }
    const audience = one(params, "audience");
    const resource = one(params, "resource");
    const scope = one(params, "scope");
    const repository = ctx.state["ciRepository"];
    if (audience !== undefined) record.audience = audience;
    if (resource !== undefined) record.resource = resource;
    if (scope !== undefined) record.scope = scope;
    if (typeof repository === "string") record.repository = repository;
    grants.push(record);
  });

  server.on("request", provider.callback());

  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    serverUrl,
    grants,
    issuedTokens,
    secrets,
    privateKeyPem,
    privateKeyKid,
    async isValidAccessToken(token) {
      const found = await provider.AccessToken.find(token);
      return found !== undefined && !found.isExpired;
    },
    async revokeAccessToken(token) {
      const found = await provider.AccessToken.find(token, { ignoreExpiration: true });
      await found?.destroy();
    },
    setAccessTokenTtl(seconds) {
      accessTokenTtl = seconds;
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
