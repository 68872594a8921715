/**
 * GitHub's two default forms of `sub`. Repositories on github.com created, renamed or transferred after GitHub's
 * cut-over (July 15, 2026), and those whose admins opted in, get the immutable form, with the owner's and the
 * repository's numeric ids: `repo:acme@123456/app@456789:ref:refs/heads/main`. The others, and GitHub Enterprise
 * Server, keep `repo:acme/app:ref:refs/heads/main`. An IdP rule that matches `sub` exactly matches one form only.
 *
 * The form is told from the token's own claims (`repository_owner`, `repository_owner_id`, `repository_id`,
 * `repository`): `sub` is compared with a prefix built from them, never parsed.
 * @see https://docs.github.com/en/actions/reference/security/oidc
 * @see https://github.blog/changelog/2026-04-23-immutable-subject-claims-for-github-actions-oidc-tokens
 */
import type { JWTPayload } from "jose";

/** A claim that holds an id: GitHub sends digits as a string; a number is accepted too. */
function idClaim(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isInteger(value)) return String(value);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * For a token whose `sub` has the immutable form, one line that says so, shows the `sub` an IdP must expect (and
 * the name form it must not), and names the ids to pin instead. Nothing for any other token.
 */
export function immutableSubjectNotes(payload: JWTPayload): string[] {
  const { sub, repository } = payload;
  const owner = payload.repository_owner;
  const ownerId = idClaim(payload.repository_owner_id);
  const repositoryId = idClaim(payload.repository_id);
  if (typeof sub !== "string" || typeof owner !== "string" || ownerId === undefined) return [];
  if (!sub.startsWith(`repo:${owner}@${ownerId}/`)) return [];

  // The same subject in the name form, when the claims spell out the whole immutable prefix.
  const name = typeof repository === "string" && repository.startsWith(`${owner}/`) ? repository.slice(owner.length + 1) : undefined;
  const prefix = name !== undefined && repositoryId !== undefined ? `repo:${owner}@${ownerId}/${name}@${repositoryId}` : undefined;
  const nameForm =
    prefix !== undefined && sub.startsWith(`${prefix}:`)
      ? `repo:${repository as string}${sub.slice(prefix.length)}`
      : "repo:<owner>/<repo>:…";
  const form = `note: sub is GitHub's immutable form, with the owner's and the repository's ids: an IdP that matches sub must expect ${sub}, not ${nameForm};`;
  return [
    repositoryId === undefined
      ? `${form} or pin repository_owner_id ${ownerId} instead (docs/idp-setup.md#githubs-two-forms-of-sub).`
      : `${form} or pin repository_owner_id ${ownerId} and repository_id ${repositoryId} instead (docs/idp-setup.md#githubs-two-forms-of-sub).`,
  ];
}
