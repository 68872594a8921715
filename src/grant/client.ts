/**
 * The openid-client Configuration for one provider: discovery from `issuer`, or a static `tokenEndpoint`,
 * plus the client authentication method. Building it is the only place that reads key files.
 */
import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as client from "openid-client";
import { importPKCS8 } from "jose";
import type { OAuth2Config } from "../config/schema.js";
import { CiAuthError, DiscoveryError, describeCause } from "../errors.js";
import { scrub } from "../log.js";
import { insecureReason, isLoopback } from "../transport.js";

/** Seconds openid-client waits for each IdP response (headers and body). */
export const IDP_TIMEOUT_SECONDS = 30;

export type AuthMethod = "client_secret_post" | "client_secret_basic" | "none" | "private_key_jwt";

/** The method in force: explicit, else `client_secret_post` when a secret is set, else `none` (public client). */
export function resolveAuthMethod(config: OAuth2Config): AuthMethod {
  return config.tokenEndpointAuthMethod ?? (config.clientSecret ? "client_secret_post" : "none");
}

const EC_ALGS: Record<string, string> = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" };

/** The JWS algorithm a key type implies; an unsupported key is refused here, by name, rather than failing later. */
function defaultAlg(pem: string): string {
  const key = createPrivateKey(pem);
  const type = key.asymmetricKeyType;
  if (type === "rsa") return "RS256";
  if (type === "ed25519") return "EdDSA";
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === "ec" && curve && EC_ALGS[curve]) return EC_ALGS[curve] as string;
  // RSA-PSS-typed keys cannot be imported by jose (Node or Bun): a plain RSA key with privateKeyAlg PS256 can.
  const hint = type === "rsa-pss" ? " (use a plain RSA key and set privateKeyAlg to PS256)" : "";
  throw new Error(`unsupported key type ${type ?? "unknown"}${curve ? ` on curve ${curve}` : ""}${hint}`);
}

async function clientAuth(providerId: string, config: OAuth2Config): Promise<client.ClientAuth> {
  const method = resolveAuthMethod(config);
  switch (method) {
    case "none":
      return client.None();
    case "client_secret_post":
      return client.ClientSecretPost(config.clientSecret);
    case "client_secret_basic":
      return client.ClientSecretBasic(config.clientSecret);
    case "private_key_jwt": {
      const path = config.privateKeyPath as string;
      const fail = (message: string, cause: unknown) => new CiAuthError("ERR_CONFIG_INVALID", `oauth2.privateKeyPath: ${message}`, { providerId, step: "config", cause });
      let pem: string;
      try {
        pem = await readFile(path, "utf8");
      } catch (err) {
        throw fail(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? describeCause(err)}).`, err);
      }
      try {
        const alg = config.privateKeyAlg ?? defaultAlg(pem);
        const key = await importPKCS8(pem, alg);
        return client.PrivateKeyJwt(config.privateKeyId ? { key, kid: config.privateKeyId } : key);
      } catch (err) {
        // The key itself never appears in the message: only the file and why it is unusable. Node's and jose's
        // messages name the problem (wrong format, wrong algorithm) without key material; scrubbed regardless.
        const why = err instanceof Error && err.message ? `${err.name}: ${scrub(err.message)}` : describeCause(err);
        throw fail(
          `${path} is not a usable PKCS#8 PEM private key (${why}). A PKCS#1 key ("BEGIN RSA PRIVATE KEY") converts with \`openssl pkcs8 -topk8 -nocrypt\`; check privateKeyAlg against the key type.`,
          err,
        );
      }
    }
  }
}

export interface ClientOptions {
  fetch?: typeof globalThis.fetch | undefined;
}

function allowLoopbackHttp(url: URL): Array<(c: client.Configuration) => void> {
  return url.protocol === "http:" && isLoopback(url) ? [client.allowInsecureRequests] : [];
}

/** Discover (or assemble) the configuration. Throws DiscoveryError or a config error; never a raw library error. */
export async function createGrantClient(providerId: string, config: OAuth2Config, options: ClientOptions = {}): Promise<client.Configuration> {
  // The schema already refuses these; checked again for library callers who build a config by hand.
  for (const field of ["issuer", "tokenEndpoint"] as const) {
    const value = config[field];
    const insecure = value === undefined ? undefined : insecureReason(new URL(value));
    if (insecure) throw new CiAuthError("ERR_CONFIG_INVALID", `oauth2.${field}: ${insecure}.`, { providerId, step: "config" });
  }
  const auth = await clientAuth(providerId, config);
  const metadata: Partial<client.ClientMetadata> = {};
  let configuration: client.Configuration;
  if (config.tokenEndpoint) {
    const endpoint = new URL(config.tokenEndpoint);
    // Without an issuer, the token endpoint stands in for it: it is then the `aud` of private_key_jwt client
    // assertions, which RFC 7523 §3 allows and IdPs with a path-scoped issuer (Keycloak realms) accept.
    configuration = new client.Configuration({ issuer: config.issuer ?? endpoint.href, token_endpoint: endpoint.href }, config.clientId, metadata, auth);
    for (const apply of allowLoopbackHttp(endpoint)) apply(configuration);
  } else {
    const issuer = new URL(config.issuer as string);
    try {
      configuration = await client.discovery(issuer, config.clientId, metadata, auth, {
        execute: allowLoopbackHttp(issuer),
        timeout: IDP_TIMEOUT_SECONDS,
        ...(options.fetch ? { [client.customFetch]: options.fetch } : {}),
      });
    } catch (err) {
      throw new DiscoveryError(`discovery at ${issuer.href} did not succeed: ${discoveryHint(err)}`, { providerId, cause: err });
    }
    const tokenEndpoint = configuration.serverMetadata().token_endpoint;
    if (!tokenEndpoint) {
      throw new DiscoveryError(`the discovery document of ${issuer.href} has no token_endpoint. Set oauth2.tokenEndpoint explicitly.`, { providerId });
    }
    const insecure = insecureReason(new URL(tokenEndpoint));
    if (insecure) throw new DiscoveryError(`the discovered token endpoint ${insecure}.`, { providerId });
  }
  if (options.fetch) configuration[client.customFetch] = options.fetch;
  configuration.timeout = IDP_TIMEOUT_SECONDS;
  return configuration;
}

function discoveryHint(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED":
      return "the document's issuer differs from the configured issuer. They must match exactly (scheme, host, port, path, trailing slash).";
    case "OAUTH_RESPONSE_IS_NOT_JSON":
      return "the answer is not JSON. Check that issuer is the IdP's issuer URL (e.g. Keycloak: https://HOST/realms/REALM).";
    case "OAUTH_RESPONSE_IS_NOT_CONFORM":
      return `the IdP answered HTTP ${statusOf(err) ?? "error"} for /.well-known/openid-configuration. Check the issuer URL, or set oauth2.tokenEndpoint to skip discovery.`;
    case "OAUTH_TIMEOUT":
      return `no answer within ${IDP_TIMEOUT_SECONDS}s.`;
    default:
      return `could not reach it (${describeCause(err)}). Check the issuer URL and that the job can reach the IdP.`;
  }
}

export function statusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; cause?: { status?: unknown } };
  if (typeof e.status === "number") return e.status;
  if (typeof e.cause?.status === "number") return e.cause.status;
  return undefined;
}
