/**
 * The file cache's key: a hash of everything that shapes the access token an IdP issues, the job's identity
 * included, so a token on disk is only ever found by a process acting for the same job with the same settings.
 */
import { createHash } from "node:crypto";
import { byCodeUnit, canonicalJson } from "../canonical-json.js";
import { FILE_FORMAT_VERSION } from "./file-store.js";

/**
 * Everything that shapes the access token an IdP issues. Two processes get the same key, and so share a token,
 * only if all of it is equal.
 */
export interface TokenCacheKeyInput {
  issuer?: string;
  tokenEndpoint?: string;
  clientId: string;
  authFlow: string;
  /** A set: order and duplicates do not matter, and empty is the same as absent (no `scope` parameter is sent). */
  scopes?: string[];
  /** A set, like scopes. */
  tokenExchangeAudience?: string[];
  /** A set, like scopes. */
  tokenExchangeResource?: string[];
  requestedTokenType?: string;
  subjectTokenType?: string;
  /** Google: the service account whose token is cached, and its scopes (a set). */
  serviceAccountImpersonation?: { email: string; scopes?: string[] | undefined } | undefined;
  /**
   * Where the subject token comes from. `type` is the source type (`github_actions`, `gitlab`, `file`, `env`).
   * `identity` is a string that is equal for two processes only if they act for the same job run with the same
   * subject-token configuration: a cached token must never cross from one job, run attempt, environment or
   * repository to another. Build it from the source's settings (audience, variable name, path) plus the CI
   * platform's per-job values (e.g. GitHub: server URL, repository id, run id, run attempt, job; GitLab: server
   * URL, project id, job id), as an unambiguous encoding such as a JSON array. When a per-job value alone cannot
   * tell two jobs apart (GitHub matrix legs share run id and job name), add a SHA-256 of the job's own credential
   * (ACTIONS_ID_TOKEN_REQUEST_TOKEN, or the subject token for `gitlab`/`env`/`file`): only a process that holds
   * that credential could obtain the token anyway. Never put a secret itself here. Must not be empty.
   */
  source: { type: string; identity: string };
}

/** Sorted and de-duplicated; undefined when empty, because an empty list sends the same request as none. */
function asSet(values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  return [...new Set(values)].sort(byCodeUnit);
}

/**
 * sha256 over a canonical JSON of everything that shapes the token (stable key order, arrays sorted where order
 * is meaningless e.g. scopes), hex. Only the named fields are read, so passing an object that also holds a
 * `clientSecret` neither changes the key nor hashes the secret. Throws a TypeError on an empty
 * `source.identity` or `clientId`: a blank identity would let different jobs share a token.
 */
export function tokenCacheKey(input: TokenCacheKeyInput): string {
  if (typeof input.source?.identity !== "string" || input.source.identity.trim() === "") {
    throw new TypeError("tokenCacheKey: source.identity must be a non-empty string that identifies the job");
  }
  if (typeof input.clientId !== "string" || input.clientId === "")
    throw new TypeError("tokenCacheKey: clientId must be a non-empty string");
  const material = {
    // Domain separation: a change of what the key means changes every key.
    kind: "opencode-ci-auth/access-token",
    v: FILE_FORMAT_VERSION,
    issuer: input.issuer,
    tokenEndpoint: input.tokenEndpoint,
    clientId: input.clientId,
    authFlow: input.authFlow,
    scopes: asSet(input.scopes),
    tokenExchangeAudience: asSet(input.tokenExchangeAudience),
    tokenExchangeResource: asSet(input.tokenExchangeResource),
    requestedTokenType: input.requestedTokenType,
    subjectTokenType: input.subjectTokenType,
    serviceAccount: input.serviceAccountImpersonation && {
      email: input.serviceAccountImpersonation.email,
      scopes: asSet(input.serviceAccountImpersonation.scopes),
    },
    source: { type: input.source.type, identity: input.source.identity },
  };
  return createHash("sha256").update(canonicalJson(material), "utf8").digest("hex");
}
