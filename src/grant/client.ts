/**
 * The openid-client Configuration for one provider: discovery from `issuer`, or a static `tokenEndpoint`,
 * plus the client authentication method. Building it is the only place that reads key files.
 */
import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as client from "openid-client";
import { importPKCS8 } from "jose";
import { checkDiscoveredTokenEndpoint, type AllowLists } from "../config/allow-lists.js";
import type { OAuth2Config } from "../config/schema.js";
import { describeCause } from "../describe-failure.js";
import { CiAuthError, DiscoveryError } from "../errors.js";
import { limitedFetch } from "../http/body.js";
import { insecureReason, isLoopback } from "../http/transport.js";
import { scrub } from "../log.js";
import { discoveryError } from "./errors.js";

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

/**
 * Sends nothing: with `client_credentials` the client's authentication is the job's token, which the grant puts in
 * `client_assertion` itself (grant.ts); a service that takes no client (Google STS) must get no `client_id` either,
 * which openid-client's None() would add.
 */
const noClientAuthentication: client.ClientAuth = () => undefined;

/** openid-client needs a client id for its Configuration; when the block has none it is never sent (above). */
const NO_CLIENT_ID = "opencode-ci-auth:no-client";

async function clientAuth(providerId: string, config: OAuth2Config): Promise<client.ClientAuth> {
  if (config.authFlow === "client_credentials" || config.clientId === undefined) return noClientAuthentication;
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
      const fail = (message: string, cause: unknown) =>
        new CiAuthError("ERR_CONFIG_INVALID", `oauth2.privateKeyPath: ${message}`, { providerId, step: "config", cause });
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
  /** The job's allow-lists: a discovered token endpoint outside them is refused before any grant. */
  allowLists?: AllowLists | undefined;
}

function allowLoopbackHttp(url: URL): Array<(c: client.Configuration) => void> {
  return url.protocol === "http:" && isLoopback(url) ? [client.allowInsecureRequests] : [];
}

/**
 * The fetch openid-client uses: bodies past MAX_BODY_BYTES fail instead of being buffered whole. globalThis.fetch
 * is looked up per call, so a runtime that replaces it later is still honoured.
 */
function boundedFetch(fetchImpl: typeof globalThis.fetch | undefined): typeof globalThis.fetch {
  return limitedFetch(fetchImpl ?? ((input, init) => globalThis.fetch(input, init)));
}

/** Discovery documents by issuer, shared by every provider of the process (per fetch, so tests stay isolated). */
const discovered = new WeakMap<typeof globalThis.fetch, Map<string, Promise<client.ServerMetadata>>>();

/**
 * The issuer's metadata: fetched once per process and shared; a failure is not cached, so the next grant (or
 * retry) tries again.
 */
function discoverServer(
  providerId: string,
  issuer: URL,
  timeoutSeconds: number,
  fetchImpl: typeof globalThis.fetch | undefined,
): Promise<client.ServerMetadata> {
  const cache = discovered.get(fetchImpl ?? globalThis.fetch) ?? new Map<string, Promise<client.ServerMetadata>>();
  discovered.set(fetchImpl ?? globalThis.fetch, cache);
  const hit = cache.get(issuer.href);
  if (hit) return hit;
  const pending = client
    .discovery(issuer, "opencode-ci-auth", undefined, client.None(), {
      execute: allowLoopbackHttp(issuer),
      timeout: timeoutSeconds,
      [client.customFetch]: boundedFetch(fetchImpl),
    })
    .then(
      (configuration) => configuration.serverMetadata(),
      (err: unknown) => {
        if (cache.get(issuer.href) === pending) cache.delete(issuer.href);
        throw discoveryError(providerId, issuer, err, timeoutSeconds);
      },
    );
  cache.set(issuer.href, pending);
  return pending;
}

/** Discover (or assemble) the configuration. Throws DiscoveryError or a config error; never a raw library error. */
export async function createGrantClient(
  providerId: string,
  config: OAuth2Config,
  options: ClientOptions = {},
): Promise<client.Configuration> {
  // The schema already refuses these; checked again for library callers who build a config by hand.
  for (const field of ["issuer", "tokenEndpoint"] as const) {
    const value = config[field];
    const insecure = value === undefined ? undefined : insecureReason(new URL(value));
    if (insecure) throw new CiAuthError("ERR_CONFIG_INVALID", `oauth2.${field}: ${insecure}.`, { providerId, step: "config" });
  }
  const timeoutSeconds = config.timeoutSeconds;
  const auth = await clientAuth(providerId, config);
  let server: client.ServerMetadata;
  let transportUrl: URL;
  if (config.tokenEndpoint) {
    transportUrl = new URL(config.tokenEndpoint);
    // Without an issuer, the token endpoint stands in for it: it is then the `aud` of private_key_jwt client
    // assertions, which RFC 7523 §3 allows and IdPs with a path-scoped issuer (Keycloak realms) accept.
    server = { issuer: config.issuer ?? transportUrl.href, token_endpoint: transportUrl.href };
  } else {
    const issuer = new URL(config.issuer as string);
    server = { ...(await discoverServer(providerId, issuer, timeoutSeconds, options.fetch)) };
    if (!server.token_endpoint) {
      throw new DiscoveryError(`the discovery document of ${issuer.href} has no token_endpoint. Set oauth2.tokenEndpoint explicitly.`, {
        providerId,
      });
    }
    transportUrl = new URL(server.token_endpoint);
    const insecure = insecureReason(transportUrl);
    if (insecure) throw new DiscoveryError(`the discovered token endpoint ${insecure}.`, { providerId });
    const refused = options.allowLists && checkDiscoveredTokenEndpoint(server.token_endpoint, options.allowLists);
    if (refused) throw new DiscoveryError(`discovery at ${issuer.href}: ${refused}.`, { providerId });
  }
  const configuration = new client.Configuration(server, config.clientId ?? NO_CLIENT_ID, {}, auth);
  for (const apply of allowLoopbackHttp(transportUrl)) apply(configuration);
  configuration[client.customFetch] = boundedFetch(options.fetch);
  configuration.timeout = timeoutSeconds;
  return configuration;
}
