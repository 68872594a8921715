/**
 * src/inspection.ts drives the plugin's own chain, so doctor and the plugin cannot disagree: a rule added to the
 * chain (SUBJECT_TOKEN_RULES) is enforced by the token provider and shown by doctor, with no change to either.
 * Runs in process against the loopback world: the fake GitHub token service and the real oidc-provider IdP.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { renderText } from "../src/cli/doctor-report.js";
import { runDoctor } from "../src/cli/doctor.js";
import { oauth2Schema } from "../src/config/schema.js";
import { SubjectTokenInvalidError } from "../src/errors.js";
import { inspectProvider } from "../src/inspection.js";
import type { SubjectTokenRule } from "../src/subject-token/claims.js";
import { SUBJECT_TOKEN_RULES } from "../src/subject-token-rules.js";
import { TokenProvider } from "../src/token-provider.js";
import { captureLogger, rejectionOf } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld, type World } from "./support/world.js";

let world: World;
const added: SubjectTokenRule[] = [];

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
afterEach(() => {
  for (const rule of added.splice(0)) SUBJECT_TOKEN_RULES.splice(SUBJECT_TOKEN_RULES.indexOf(rule), 1);
});

/** A rule a team might add: no tokens of push events (the fake GitHub tokens are push events on main). */
const noPushEvents: SubjectTokenRule = ({ payload, source, providerId }) =>
  payload["event_name"] === "push"
    ? new SubjectTokenInvalidError(source, "push events may not use this provider (test rule).", { providerId })
    : undefined;

function addRule(rule: SubjectTokenRule): void {
  SUBJECT_TOKEN_RULES.push(rule);
  added.push(rule);
}

const githubEnv = () => ({
  GITHUB_ACTIONS: "true",
  ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
});
const oauth2 = () => ({
  issuer: world.idp.issuer,
  clientId: IDP_CLIENTS.none,
  scopes: ["models.read"],
  subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
});
const entry = () => ({ options: { baseURL: world.model.baseURL, oauth2: oauth2() } });

describe("a rule added to the chain", () => {
  it("is enforced by the plugin and shown by doctor, with no change to either", async () => {
    // Before: ready, and the plugin gets a token.
    const before = await runDoctor({
      config: { provider: { miaou: entry() } },
      sources: [{ origin: "project", path: "opencode.json" }],
      env: githubEnv(),
    });
    expect(before.ok).toBe(true);

    addRule(noPushEvents);
    const grants = world.idp.grants.length;

    const tokens = new TokenProvider("miaou", oauth2Schema.parse(oauth2()), { env: githubEnv(), logger: captureLogger("silent").logger });
    const err = await rejectionOf(tokens.getToken());
    expect(err.message).toBe(
      'opencode-ci-auth: provider "miaou": github_actions subject token: push events may not use this provider (test rule).',
    );

    const report = await runDoctor({
      config: { provider: { miaou: entry() } },
      sources: [{ origin: "project", path: "opencode.json" }],
      env: githubEnv(),
    });
    expect(report.ok).toBe(false);
    const text = renderText(report);
    expect(text).toContain("  ✗ subject token from github_actions fails the local checks\n");
    expect(text).toContain("    → github_actions subject token: push events may not use this provider (test rule).\n");
    expect(text).toContain("  - grant not attempted (an earlier step failed)\n");
    // Neither the plugin nor doctor sent the token.
    expect(world.idp.grants.length).toBe(grants);
  });

  it("shows every failing rule, not only the first (the plugin reports the first)", async () => {
    addRule(noPushEvents);
    const env = { ...githubEnv(), OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: "https://elsewhere.example.com" };
    // The audience allow-list refuses at parse time for a configured audience; without one it judges the token.
    const block = { ...oauth2(), subjectTokenSource: { type: "github_actions" } };
    const inspection = await inspectProvider("miaou", { options: { baseURL: world.model.baseURL, oauth2: block } }, { env });
    const step = inspection.steps.find((s) => s.step === "subject-token");
    expect(step?.status).toBe("fail");
    expect(step?.fix).toBe(
      "github_actions subject token: the token's audience \"https://github.com/acme\" is not in OPENCODE_CI_AUTH_ALLOWED_AUDIENCES (https://elsewhere.example.com), which this job sets: request the token for one of those (subjectTokenSource.audience), or add it to OPENCODE_CI_AUTH_ALLOWED_AUDIENCES in the job's environment. Nothing was sent.",
    );
    expect(step?.lines).toContain("✗ github_actions subject token: push events may not use this provider (test rule).");
    expect(inspection.steps.find((s) => s.step === "grant")?.status).toBe("skip");
  });
});

describe("inspectProvider", () => {
  it("runs the plugin's parse: a provider the plugin refuses (no baseURL) is not ready", async () => {
    const inspection = await inspectProvider("miaou", { options: { oauth2: oauth2() } }, { env: githubEnv() });
    expect(inspection.ok).toBe(false);
    expect(inspection.steps).toEqual([
      expect.objectContaining({
        step: "config",
        status: "fail",
        lines: [expect.stringMatching(/^options\.baseURL: is required: the access token is sent to it\./)],
      }),
    ]);
  });

  it("steps: config, subject token, discovery, grant, each ✓, and nothing in them is a token", async () => {
    const inspection = await inspectProvider("miaou", entry(), { env: githubEnv() });
    expect(inspection.steps.map((s) => [s.step, s.status])).toEqual([
      ["config", "ok"],
      ["subject-token", "ok"],
      ["discovery", "ok"],
      ["grant", "ok"],
    ]);
    const text = JSON.stringify(inspection.steps);
    for (const token of [...world.ci.tokensIssued, ...world.idp.issuedTokens]) expect(text.includes(token)).toBe(false);
  });
});
