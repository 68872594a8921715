/**
 * The rules every subject token must pass before the chain sends it anywhere, in order: the standard checks
 * (subject-token/claims.ts: expiry, not-before, the configured audience), then the job's audience allow-list.
 * The token provider refuses a token on the first problem; `inspectProvider` (doctor) shows every rule's verdict.
 * A rule added here is enforced by the plugin and shown by doctor, with no change to either.
 * `expectClaims` is checked after these, as a step of its own (it yields a table, not one message).
 */
import { checkTokenAudience, readAllowLists } from "./config/allow-lists.js";
import { SubjectTokenInvalidError } from "./errors.js";
import { STANDARD_RULES, type SubjectTokenRule } from "./subject-token/claims.js";

/** The job's audience allow-list, against the token itself: it covers audiences the config does not state. */
export const allowedAudience: SubjectTokenRule = ({ aud, env, source, providerId }) => {
  const refused = checkTokenAudience(aud, readAllowLists(env));
  return refused ? new SubjectTokenInvalidError(source, `${refused}. Nothing was sent.`, { providerId }) : undefined;
};

export const SUBJECT_TOKEN_RULES: SubjectTokenRule[] = [...STANDARD_RULES, allowedAudience];
