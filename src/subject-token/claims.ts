/**
 * Local checks on a subject token before it is sent anywhere, and the non-secret claims worth logging.
 * A token that is not a JWT, has expired, or carries the wrong audience fails here with a message that names
 * the source, instead of as an opaque `invalid_grant` from the IdP.
 */
import { decodeJwt, type JWTPayload } from "jose";
import { SubjectTokenInvalidError } from "../errors.js";
import { SOURCES } from "./sources.js";

/**
 * Claims that identify the job without being secret, shown in logs and diagnostics: the standard ones, then each
 * platform's own, in the order of the table (sources.ts).
 */
export const SUMMARY_CLAIMS: readonly string[] = ["iss", "aud", "sub", ...SOURCES.flatMap((s) => s.summaryClaims ?? [])];

/**
 * Non-secret parts of object claims, shown under a name of their own: Kubernetes puts the namespace and service
 * account in `kubernetes.io`, a Compute Engine VM's token (format=full) the project in `google.compute_engine`.
 */
export const NESTED_SUMMARY_CLAIMS: Readonly<Record<string, readonly string[]>> = Object.assign(
  {},
  ...SOURCES.map((s) => s.nestedSummaryClaims ?? {}),
);

/** Tolerated clock difference between the CI platform and this machine. */
export const CLOCK_SKEW_SECONDS = 60;

export interface CheckedSubjectToken {
  /** The non-secret summary (SUMMARY_CLAIMS), for logs. */
  claims: Record<string, unknown>;
  /** Every claim of the payload (never the signature), for expectClaims. */
  payload: JWTPayload;
  /** Expiry in epoch milliseconds, when the token states one. */
  expiresAt: number | undefined;
}

export interface CheckOptions {
  source: string;
  providerId: string;
  expectedAudience: string | undefined;
  now?: number;
}

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

function nested(payload: JWTPayload, path: readonly string[]): unknown {
  let current: unknown = payload;
  for (const key of path) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return typeof current === "string" || typeof current === "number" || typeof current === "boolean" ? current : undefined;
}

/** The SUMMARY_CLAIMS and NESTED_SUMMARY_CLAIMS the payload has, in that order (no `exp`). */
export function pickSummaryClaims(payload: JWTPayload): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of SUMMARY_CLAIMS) if (payload[name] !== undefined) out[name] = payload[name];
  for (const [name, path] of Object.entries(NESTED_SUMMARY_CLAIMS)) {
    const value = nested(payload, path);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export function summarizeClaims(payload: JWTPayload): Record<string, unknown> {
  const out = pickSummaryClaims(payload);
  if (typeof payload.exp === "number") out.exp = iso(payload.exp);
  return out;
}

/** What a rule may look at: the decoded payload (never the token itself), its audiences, the clock and settings. */
export interface SubjectTokenFacts {
  payload: JWTPayload;
  /** `aud` as a list (a string `aud` is one element). */
  aud: string[];
  /** Epoch seconds. */
  nowSeconds: number;
  source: string;
  providerId: string;
  expectedAudience: string | undefined;
  env: NodeJS.ProcessEnv;
}

/**
 * One local check on a subject token, run before the token is sent anywhere: a problem (an error that says how to
 * fix it), or undefined. The chain's list of rules is in subject-token-rules.ts; doctor shows every rule's verdict.
 */
export type SubjectTokenRule = (facts: SubjectTokenFacts) => SubjectTokenInvalidError | undefined;

export const notExpired: SubjectTokenRule = ({ payload, nowSeconds, source, providerId }) =>
  typeof payload.exp === "number" && payload.exp <= nowSeconds
    ? new SubjectTokenInvalidError(
        source,
        `the token expired at ${iso(payload.exp)} (now ${iso(nowSeconds)}). A source must provide a fresh token for every grant.`,
        { providerId },
      )
    : undefined;

export const alreadyValid: SubjectTokenRule = ({ payload, nowSeconds, source, providerId }) =>
  typeof payload.nbf === "number" && payload.nbf > nowSeconds + CLOCK_SKEW_SECONDS
    ? new SubjectTokenInvalidError(
        source,
        `the token is not valid before ${iso(payload.nbf)}; this machine's clock is more than ${CLOCK_SKEW_SECONDS}s behind.`,
        { providerId },
      )
    : undefined;

export const configuredAudience: SubjectTokenRule = ({ aud, expectedAudience, source, providerId }) =>
  expectedAudience !== undefined && !aud.includes(expectedAudience)
    ? new SubjectTokenInvalidError(
        source,
        `the token's audience ${JSON.stringify(aud)} does not include the configured audience "${expectedAudience}". Request the token with that audience (or fix "audience" in subjectTokenSource).`,
        { providerId },
      )
    : undefined;

/** The checks every subject token must pass whoever uses it: the chain adds the job's own (subject-token-rules.ts). */
export const STANDARD_RULES: readonly SubjectTokenRule[] = [notExpired, alreadyValid, configuredAudience];

/** The payload of a token that must be a JWT; a SubjectTokenInvalidError that never echoes the token otherwise. */
export function decodeSubjectToken(token: string, where: { source: string; providerId: string }): JWTPayload {
  try {
    return decodeJwt(token);
  } catch {
    // Never echo the token: only its shape matters for the fix.
    throw new SubjectTokenInvalidError(
      where.source,
      "the value is not a JWT (expected three base64url parts separated by dots). Check that the source points at the OIDC token itself.",
      {
        providerId: where.providerId,
      },
    );
  }
}

/** The facts the rules look at. */
export function subjectTokenFacts(payload: JWTPayload, options: CheckOptions & { env?: NodeJS.ProcessEnv }): SubjectTokenFacts {
  return {
    payload,
    aud: payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud],
    nowSeconds: Math.floor((options.now ?? Date.now()) / 1000),
    source: options.source,
    providerId: options.providerId,
    expectedAudience: options.expectedAudience,
    env: options.env ?? {},
  };
}

/** The standard checks, throwing the first problem; the summary and expiry of a token that passes. */
export function checkSubjectToken(
  token: string,
  options: CheckOptions,
  rules: readonly SubjectTokenRule[] = STANDARD_RULES,
): CheckedSubjectToken {
  const payload = decodeSubjectToken(token, options);
  const facts = subjectTokenFacts(payload, options);
  for (const rule of rules) {
    const problem = rule(facts);
    if (problem) throw problem;
  }
  return { claims: summarizeClaims(payload), payload, expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : undefined };
}
