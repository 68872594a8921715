/**
 * How the fake Entra judges a federated client assertion (the CI job's JWT) against an app's federated identity
 * credentials (FICs): issuer first (it decides whose keys to trust), then signature, validity window, subject and
 * audience, each matched exactly as Entra does since August 2024. The order between the last checks is the fake's
 * choice; Microsoft does not document it. Flexible FICs (claims matching expressions) are not emulated.
 * @see https://learn.microsoft.com/en-us/entra/workload-id/workload-identity-federation-considerations
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose";
import type { JWTPayload } from "jose";

import { aadsts } from "./entra-errors.js";
import type { EntraError } from "./entra-errors.js";
import type { IssuerKeyResolver } from "./oidc-issuer-keys.js";

export interface FederatedIdentityCredential {
  name?: string;
  /** Must equal the assertion's `iss` exactly. */
  issuer: string;
  /** Must equal the assertion's `sub` exactly (case-sensitive). */
  subject: string;
  /** Entra allows exactly one; the assertion's `aud` must contain it. */
  audiences: string[];
}

export interface AssertionCheck {
  credentials: FederatedIdentityCredential[];
  keys: IssuerKeyResolver;
  now: number;
  clockToleranceSeconds: number;
  /** `legacy` answers every mismatch with AADSTS70021 (the older combined message). */
  noMatchStyle: "specific" | "legacy";
}

/** The matched credential and the verified claims, or the Entra error to answer. */
export type AssertionResult =
  { ok: true; credential: FederatedIdentityCredential; claims: JWTPayload } | { ok: false; failure: EntraError };

// Entra "supports" RS256 issuers only but says others may work; the CI issuer fake signs ES256, so accept both families.
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

function audiencesOf(claims: JWTPayload): string[] {
  if (typeof claims.aud === "string") return [claims.aud];
  return Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === "string") : [];
}

function fail(failure: EntraError): AssertionResult {
  return { ok: false, failure };
}

/** Verifies signature and validity window against the issuer's published keys. */
async function verifySignature(assertion: string, claims: JWTPayload, iss: string, check: AssertionCheck): Promise<EntraError | undefined> {
  const kid = String(decodeProtectedHeader(assertion).kid ?? "");
  let keys;
  try {
    keys = await check.keys.keysFor(iss);
  } catch {
    // Metadata that cannot be read is reported like a missing key (fake's choice; real wording unknown).
    return aadsts.signingKeyNotFound(kid, iss);
  }
  try {
    await jwtVerify(assertion, keys, {
      algorithms: ALGORITHMS,
      currentDate: new Date(check.now),
      clockTolerance: check.clockToleranceSeconds,
      requiredClaims: ["exp"],
    });
    return undefined;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed) {
      return aadsts.assertionTimeRange(check.now, claims.nbf, claims.exp);
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JOSEAlgNotAllowed) {
      return aadsts.badSignature();
    }
    if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return aadsts.malformedAssertion();
    // No key with that kid, or the JWKS could not be fetched or used.
    return aadsts.signingKeyNotFound(kid, iss);
  }
}

export async function checkAssertion(assertion: string, check: AssertionCheck): Promise<AssertionResult> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(assertion);
    decodeProtectedHeader(assertion);
  } catch {
    return fail(aadsts.malformedAssertion());
  }
  const iss = typeof claims.iss === "string" ? claims.iss : "";
  const sub = typeof claims.sub === "string" ? claims.sub : "";
  const auds = audiencesOf(claims);
  const legacy = check.noMatchStyle === "legacy" ? aadsts.noMatchingRecord(iss, sub, auds.join(", ")) : undefined;

  const byIssuer = check.credentials.filter((c) => c.issuer === iss);
  if (byIssuer.length === 0) return fail(legacy ?? aadsts.noRecordForIssuer(iss));

  const invalid = await verifySignature(assertion, claims, iss, check);
  if (invalid) return fail(invalid);

  const bySubject = byIssuer.filter((c) => c.subject === sub);
  if (bySubject.length === 0) {
    if (legacy) return fail(legacy);
    const caseOnly = byIssuer.some((c) => c.subject.toLowerCase() === sub.toLowerCase());
    return fail(caseOnly ? aadsts.subjectCaseMismatch(sub) : aadsts.noRecordForSubject(sub));
  }
  const credential = bySubject.find((c) => c.audiences.some((a) => auds.includes(a)));
  if (!credential) return fail(legacy ?? aadsts.noRecordForAudience(auds.join(", ")));
  return { ok: true, credential, claims };
}
