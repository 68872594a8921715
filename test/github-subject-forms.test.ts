/**
 * GitHub's two forms of `sub` (test/support/ci-issuer.ts GITHUB_SUBJECTS) through the plugin's chain, on loopback: the
 * fake GitHub token service and the real oidc-provider IdP. The plugin behaves the same with either (it never parses
 * `sub`): the grant, `expectClaims` on the ids, and what it logs. Only doctor's inspection differs: for the immutable
 * form it says which `sub` the IdP must expect.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { oauth2Schema } from "../src/config/schema.js";
import type { OAuth2Input } from "../src/config/schema.js";
import { SubjectTokenClaimsError } from "../src/errors.js";
import { inspectProvider } from "../src/inspection.js";
import { TokenProvider } from "../src/token-provider.js";
import { GITHUB_SUBJECTS, type GithubSubjectForm } from "./support/ci-issuer.js";
import { captureLogger, rejectionOf } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld, type World } from "./support/world.js";

const FORMS = Object.keys(GITHUB_SUBJECTS) as GithubSubjectForm[];
const IMMUTABLE_NOTE =
  "note: sub is GitHub's immutable form, with the owner's and the repository's ids: an IdP that matches sub must expect repo:acme@200001/app@100001:ref:refs/heads/main, not repo:acme/app:ref:refs/heads/main; or pin repository_owner_id 200001 and repository_id 100001 instead (docs/idp-setup.md#githubs-two-forms-of-sub).";

describe.each(FORMS)("a repository whose tokens carry the %s form of sub", (form) => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld({ ci: { githubSubject: form } });
  });
  afterAll(async () => {
    await world?.close();
  });

  const env = () => ({
    GITHUB_ACTIONS: "true",
    ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
  });
  const block = (extra: Partial<OAuth2Input> = {}) => ({
    issuer: world.idp.issuer,
    clientId: IDP_CLIENTS.none,
    scopes: ["models.read"],
    subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
    ...extra,
  });
  const provider = (extra: Partial<OAuth2Input> = {}) => {
    const log = captureLogger("info");
    return { tokens: new TokenProvider("miaou", oauth2Schema.parse(block(extra)), { env: env(), logger: log.logger }), log };
  };

  it("the grant succeeds, and the logged claims hold this sub and the ids", async () => {
    const { tokens, log } = provider();
    const token = await tokens.getToken();
    expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
    expect(world.idp.grants.at(-1)).toMatchObject({ ok: true, repository: "acme/app" });
    const obtained = log.lines.find((l) => l.event === "subject_token_obtained");
    expect(obtained?.claims).toMatchObject({
      sub: GITHUB_SUBJECTS[form],
      repository_id: "100001",
      repository_owner: "acme",
      repository_owner_id: "200001",
    });
  });

  it("expectClaims on the ids matches either form", async () => {
    const { tokens } = provider({ expectClaims: { repository_owner_id: "200001", repository_id: "100001" } });
    await expect(tokens.getToken()).resolves.toMatchObject({ tokenType: "Bearer" });
  });

  it("expectClaims on one exact form of sub refuses the other, before the IdP", async () => {
    const other = form === "name" ? GITHUB_SUBJECTS.immutable : GITHUB_SUBJECTS.name;
    const grants = world.idp.grants.length;
    const { tokens } = provider({ expectClaims: { sub: other } });
    const err = await rejectionOf(tokens.getToken());
    expect(err).toBeInstanceOf(SubjectTokenClaimsError);
    expect((err as SubjectTokenClaimsError).table).toContain(`sub  ${GITHUB_SUBJECTS[form]}  ✗ expected ${other}`);
    expect(world.idp.grants.length).toBe(grants);
  });

  it(`doctor's inspection ${form === "immutable" ? "says which sub the IdP must expect" : "adds no note"}, and every step passes`, async () => {
    const inspection = await inspectProvider("miaou", { options: { baseURL: world.model.baseURL, oauth2: block() } }, { env: env() });
    expect(inspection.steps.map((s) => [s.step, s.status])).toEqual([
      ["config", "ok"],
      ["subject-token", "ok"],
      ["discovery", "ok"],
      ["grant", "ok"],
    ]);
    const lines = inspection.steps.find((s) => s.step === "subject-token")?.lines ?? [];
    expect(lines).toContain(`sub                  ${GITHUB_SUBJECTS[form]}`);
    expect(lines).toContain("repository_owner_id  200001");
    expect(lines).toContain("repository_id        100001");
    expect(lines.filter((l) => l.startsWith("note: "))).toEqual(form === "immutable" ? [IMMUTABLE_NOTE] : []);
  });
});
