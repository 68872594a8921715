/**
 * Where the job's token may go, as the job (not the repository) decides.
 *
 * opencode.json lives in the repository, where a pull request can change it: it could point `issuer`,
 * `tokenEndpoint`, the source's `audience` or a `url` source at a host of its choosing, and the plugin would mint
 * and send the job's token there. The job's environment is set by the workflow or pipeline definition. So these
 * lists, read from the environment only, pin each destination by exact string match. An empty or unset list
 * restricts nothing.
 */
import type { ConfigIssue } from "../errors.js";
import type { OAuth2Config } from "./schema.js";

export const ALLOWED_ISSUERS_ENV = "OPENCODE_CI_AUTH_ALLOWED_ISSUERS";
export const ALLOWED_TOKEN_ENDPOINTS_ENV = "OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS";
export const ALLOWED_AUDIENCES_ENV = "OPENCODE_CI_AUTH_ALLOWED_AUDIENCES";
export const ALLOWED_SOURCE_URLS_ENV = "OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS";

export interface AllowList {
  /** The environment variable that sets it, for messages. */
  variable: string;
  values: readonly string[];
}

/** The lists a job set; a list that is unset or empty is absent. */
export interface AllowLists {
  issuers?: AllowList;
  tokenEndpoints?: AllowList;
  audiences?: AllowList;
  sourceUrls?: AllowList;
}

function read(env: NodeJS.ProcessEnv, variable: string): AllowList | undefined {
  const values = (env[variable] ?? "")
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  return values.length > 0 ? { variable, values } : undefined;
}

export function readAllowLists(env: NodeJS.ProcessEnv): AllowLists {
  const lists: AllowLists = {};
  const issuers = read(env, ALLOWED_ISSUERS_ENV);
  const tokenEndpoints = read(env, ALLOWED_TOKEN_ENDPOINTS_ENV);
  const audiences = read(env, ALLOWED_AUDIENCES_ENV);
  const sourceUrls = read(env, ALLOWED_SOURCE_URLS_ENV);
  if (issuers) lists.issuers = issuers;
  if (tokenEndpoints) lists.tokenEndpoints = tokenEndpoints;
  if (audiences) lists.audiences = audiences;
  if (sourceUrls) lists.sourceUrls = sourceUrls;
  return lists;
}

const shown = (list: AllowList) => `${list.variable} (${list.values.join(", ")})`;

/** The message for a value the list does not hold. */
export function notAllowed(what: string, value: string, list: AllowList): string {
  return `${what} "${value}" is not in ${shown(list)}, which this job sets: use one of those, or add it to ${list.variable} in the job's environment (the config file cannot allow it)`;
}

/**
 * The problems of a validated block against the job's lists, one per field. The token endpoint discovered from an
 * allowed issuer, and the audience of a token whose source has none configured, are checked later, once known
 * (see checkDiscoveredTokenEndpoint and checkTokenAudience), still before anything is sent.
 */
export function allowListIssues(config: OAuth2Config, lists: AllowLists): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { issuers, tokenEndpoints, audiences, sourceUrls } = lists;
  if (issuers) {
    if (config.issuer !== undefined && !issuers.values.includes(config.issuer)) {
      issues.push({ path: "oauth2.issuer", message: notAllowed("the issuer", config.issuer, issuers) });
    }
    if (config.issuer === undefined && !(tokenEndpoints && config.tokenEndpoint !== undefined)) {
      issues.push({ path: "oauth2.issuer", message: `is not set, but ${shown(issuers)} restricts the issuer: set issuer to one of those` });
    }
  }
  if (config.tokenEndpoint !== undefined) {
    if (tokenEndpoints && !tokenEndpoints.values.includes(config.tokenEndpoint)) {
      issues.push({ path: "oauth2.tokenEndpoint", message: notAllowed("the token endpoint", config.tokenEndpoint, tokenEndpoints) });
    }
    // An allowed issuer is no guarantee for an endpoint written next to it: only discovery from it is.
    if (issuers && !tokenEndpoints) {
      issues.push({
        path: "oauth2.tokenEndpoint",
        message: `is set, but this job allows only token endpoints discovered from ${shown(issuers)}: remove tokenEndpoint, or list it in ${ALLOWED_TOKEN_ENDPOINTS_ENV}`,
      });
    }
  }
  // The IAM endpoint receives the federated token: the job's token endpoints list covers it too.
  const iam = config.serviceAccountImpersonation?.endpoint;
  if (tokenEndpoints && iam !== undefined && !tokenEndpoints.values.includes(iam)) {
    issues.push({
      path: "oauth2.serviceAccountImpersonation.endpoint",
      message: notAllowed("the IAM Credentials endpoint", iam, tokenEndpoints),
    });
  }
  const audience = config.subjectTokenSource.audience;
  if (audiences && audience !== undefined && !audiences.values.includes(audience)) {
    issues.push({ path: "oauth2.subjectTokenSource.audience", message: notAllowed("the audience", audience, audiences) });
  }
  if (config.subjectTokenSource.type === "url" && sourceUrls && !sourceUrls.values.includes(config.subjectTokenSource.url)) {
    issues.push({ path: "oauth2.subjectTokenSource.url", message: notAllowed("the token URL", config.subjectTokenSource.url, sourceUrls) });
  }
  return issues;
}

/** Undefined when the discovered token endpoint may receive the token; else the reason. */
export function checkDiscoveredTokenEndpoint(tokenEndpoint: string, lists: AllowLists): string | undefined {
  const { tokenEndpoints } = lists;
  if (!tokenEndpoints || tokenEndpoints.values.includes(tokenEndpoint)) return undefined;
  return notAllowed("the discovered token endpoint", tokenEndpoint, tokenEndpoints);
}

/** Undefined when every audience of the token is allowed; else the reason. */
export function checkTokenAudience(aud: readonly string[], lists: AllowLists): string | undefined {
  const { audiences } = lists;
  if (!audiences) return undefined;
  const outside = aud.filter((a) => !audiences.values.includes(a));
  if (aud.length > 0 && outside.length === 0) return undefined;
  const what =
    aud.length === 0 ? "the token has no audience" : `the token's audience ${JSON.stringify(outside.length === 1 ? outside[0] : outside)}`;
  return `${what} is not in ${shown(audiences)}, which this job sets: request the token for one of those (subjectTokenSource.audience), or add it to ${audiences.variable} in the job's environment`;
}
