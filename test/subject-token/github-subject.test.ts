/**
 * immutableSubjectNotes: GitHub's immutable `sub` told from the token's own claims, and the note doctor shows for it.
 * Claims are shaped like real GitHub tokens (ids as strings of digits).
 */
import { describe, expect, it } from "vitest";

import { immutableSubjectNotes } from "../../src/subject-token/github-subject.js";

const CLAIMS = { repository: "acme/app", repository_id: "456789", repository_owner: "acme", repository_owner_id: "123456" };
const NOTE_TAIL = "or pin repository_owner_id 123456 and repository_id 456789 instead (docs/idp-setup.md#githubs-two-forms-of-sub).";

describe("immutableSubjectNotes", () => {
  it.each([
    ["a branch", ":ref:refs/heads/main"],
    ["an environment", ":environment:prod"],
    ["a pull request", ":pull_request"],
  ])("the immutable form for %s: says so, shows the sub to expect and the name form it replaces, and the ids to pin", (_label, context) => {
    expect(immutableSubjectNotes({ ...CLAIMS, sub: `repo:acme@123456/app@456789${context}` })).toEqual([
      `note: sub is GitHub's immutable form, with the owner's and the repository's ids: an IdP that matches sub must expect repo:acme@123456/app@456789${context}, not repo:acme/app${context}; ${NOTE_TAIL}`,
    ]);
  });

  it("the name form, and tokens of other platforms: nothing", () => {
    expect(immutableSubjectNotes({ ...CLAIMS, sub: "repo:acme/app:ref:refs/heads/main" })).toEqual([]);
    expect(immutableSubjectNotes({ sub: "project_path:acme/app:ref_type:branch:ref:main", project_path: "acme/app" })).toEqual([]);
    expect(immutableSubjectNotes({ sub: "repo:acme@123456/app@456789:ref:refs/heads/main" })).toEqual([]);
  });

  it("a customized subject template that does not start with repo:<owner>@<id>/: nothing", () => {
    expect(immutableSubjectNotes({ ...CLAIMS, sub: "repository_owner_id:123456:repository_id:456789" })).toEqual([]);
  });

  it("another owner id than the token's own claim: nothing (sub is never parsed, only compared)", () => {
    expect(immutableSubjectNotes({ ...CLAIMS, sub: "repo:acme@999999/app@456789:ref:refs/heads/main" })).toEqual([]);
  });

  it("ids given as numbers are read like strings", () => {
    const [note] = immutableSubjectNotes({
      ...CLAIMS,
      repository_id: 456789,
      repository_owner_id: 123456,
      sub: "repo:acme@123456/app@456789:ref:refs/heads/main",
    });
    expect(note).toContain(NOTE_TAIL);
  });

  it("when the claims do not spell out the whole prefix, it still says which form, without inventing the name form", () => {
    const noRepositoryId = immutableSubjectNotes({
      ...CLAIMS,
      repository_id: undefined,
      sub: "repo:acme@123456/app@456789:ref:refs/heads/main",
    });
    expect(noRepositoryId).toEqual([
      "note: sub is GitHub's immutable form, with the owner's and the repository's ids: an IdP that matches sub must expect repo:acme@123456/app@456789:ref:refs/heads/main, not repo:<owner>/<repo>:…; or pin repository_owner_id 123456 instead (docs/idp-setup.md#githubs-two-forms-of-sub).",
    ]);
    const renamed = immutableSubjectNotes({
      ...CLAIMS,
      repository: "acme/old-name",
      sub: "repo:acme@123456/app@456789:ref:refs/heads/main",
    });
    expect(renamed[0]).toContain("not repo:<owner>/<repo>:…;");
  });
});
