/**
 * Finds the signing keys of an external OIDC issuer the way Entra and Google STS do: read
 * `<issuer>/.well-known/openid-configuration`, then its `jwks_uri` (or a JWKS URL given up front).
 * Used by the cloud fakes to verify a CI job's token; one cached JWKS per issuer.
 */
import { createRemoteJWKSet } from "jose";
import type { JWTVerifyGetKey } from "jose";

import { isRecord } from "./cloud-http.js";

export interface IssuerKeyResolver {
  /** The key getter for `issuer`; rejects when discovery cannot be read. */
  keysFor(issuer: string): Promise<JWTVerifyGetKey>;
}

/** `jwksUris` maps an issuer to its JWKS URL and skips discovery for it. */
export function createIssuerKeyResolver(jwksUris: Record<string, string> = {}): IssuerKeyResolver {
  const cache = new Map<string, Promise<JWTVerifyGetKey>>();

  async function discover(issuer: string): Promise<JWTVerifyGetKey> {
    const explicit = jwksUris[issuer];
    if (explicit) return createRemoteJWKSet(new URL(explicit));
    const res = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`discovery of ${issuer} answered ${res.status}`);
    const doc: unknown = await res.json();
    const jwksUri = isRecord(doc) ? doc["jwks_uri"] : undefined;
    if (typeof jwksUri !== "string") throw new Error(`discovery of ${issuer} has no jwks_uri`);
    return createRemoteJWKSet(new URL(jwksUri));
  }

  return {
    keysFor(issuer) {
      let pending = cache.get(issuer);
      if (!pending) {
        pending = discover(issuer);
        cache.set(issuer, pending);
        // A failed discovery is retried on the next request, not cached forever.
        pending.catch(() => {
          if (cache.get(issuer) === pending) cache.delete(issuer);
        });
      }
      return pending;
    },
  };
}
