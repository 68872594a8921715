/**
 * Removes known secrets from text the agent's tools produced, before the model sees it. Unlike scrub.ts (which
 * guesses by shape, for logs), this knows what to look for: the exact values of the job's credentials and of the
 * tokens the plugin holds, and any JWT from an issuer the plugin has seen (a CI issuer, the IdP). The second rule
 * also catches a token the agent minted itself, which the plugin never saw. Literal matches only: an encoded
 * copy (base64, URL-encoded) passes; docs/security.md says so.
 */
import { decodeJwt } from "jose";
import { replaceJwts } from "../scrub.js";

export const REDACTED = "[redacted by opencode-ci-auth]";

/** Shorter values are not redacted: a credential is never this short, and "1" or "true" must stay readable. */
export const MIN_SECRET_LENGTH = 8;

export interface KnownSecrets {
  /** Exact values to remove wherever they appear. */
  values: Iterable<string>;
  /** JWTs whose `iss` is one of these are removed. */
  jwtIssuers: ReadonlySet<string>;
}

function issuerOf(jwt: string): string | undefined {
  try {
    const iss = decodeJwt(jwt).iss;
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** `text` without the known secrets. Linear in `text` for each value, plus one pass for JWTs. */
export function redactSecrets(text: string, secrets: KnownSecrets): string {
  let out = text;
  // Longest first, so that a value containing another is removed whole.
  const values = [...new Set(secrets.values)].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  for (const value of values) if (out.includes(value)) out = out.split(value).join(REDACTED);
  if (secrets.jwtIssuers.size > 0 && out.includes("eyJ")) {
    out = replaceJwts(out, (jwt) => {
      const iss = issuerOf(jwt);
      return iss !== undefined && secrets.jwtIssuers.has(iss) ? REDACTED : jwt;
    });
  }
  return out;
}
