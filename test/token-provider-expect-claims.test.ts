/**
 * The plugin enforces `oauth2.expectClaims` before a grant (src/token-provider.ts), on loopback: the fake GitHub
 * Actions token service → the real oidc-provider IdP. A job whose claims do not match never reaches the IdP and
 * fails with the claim table; a matching job gets its token. Runs against src/ and against the packed package
 * (test/support/under-test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import type { OAuth2Input, SubjectTokenClaimsError } from "../src/lib.js";
import { expectNoLeak, recordingFetch, rejectionOf } from "./support/harness.js";
import { UNDER_TEST, captureWith, parseWith } from "./support/under-test.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld } from "./support/world.js";
import type { World } from "./support/world.js";

let world: World;

beforeAll(async () => {
  world = await startWorld();
});

afterAll(async () => {
  await world?.close();
});

afterEach(() => {
  world.ci.claims = {};
});

function secrets() {
  return [
    ...world.ci.tokensIssued.flatMap((value, i) => [
      { label: `CI token #${i}`, value },
      { label: `CI token #${i} signature`, value: value.split(".")[2] ?? "" },
    ]),
    ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", value: world.ci.requestToken },
  ];
}

const ciTokenRequests = () => world.ci.requests.filter((r) => r.path === "/_apis/token").length;

describe.each(UNDER_TEST)("$name", ({ lib }) => {
  function makeProvider(input: Partial<OAuth2Input>) {
    const log = captureWith(lib, "trace");
    const rec = recordingFetch();
    const config = parseWith(lib, {
      issuer: world.idp.issuer,
      clientId: IDP_CLIENTS.none,
      scopes: ["models.read"],
      subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
      ...input,
    });
    const env = { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken };
    // Default retry policy (4 attempts): a claims failure that were retried would show up as more CI token requests.
    const provider = lib.createTokenProvider("miaou", config, { env, fetch: rec.fetch, logger: log.logger });
    return { provider, log, calls: rec.calls };
  }

  describe("expectClaims enforced by the token provider", () => {
    const expectClaims = { repository: "acme/*", ref: "refs/heads/main" };

    it("a job on the wrong branch fails with SubjectTokenClaimsError holding the table, and the IdP receives no grant", async () => {
      world.ci.claims = { ref: "refs/heads/feature-x" };
      const { provider, log, calls } = makeProvider({ expectClaims });
      const grantsBefore = world.idp.grants.length;
      const ciBefore = ciTokenRequests();

      const err = await rejectionOf(provider.getToken());

      expect(err).toBeInstanceOf(lib.SubjectTokenClaimsError);
      const claimsError = err as SubjectTokenClaimsError;
      expect(claimsError.code).toBe("ERR_SUBJECT_TOKEN_CLAIMS");
      expect(claimsError.step).toBe("subject-token");
      expect(claimsError.providerId).toBe("miaou");
      expect(claimsError.table.split("\n")).toEqual([
        "  repository  acme/app              ✓ acme/*",
        "  ref         refs/heads/feature-x  ✗ expected refs/heads/main",
      ]);
      expect(claimsError.message).toContain(
        `opencode-ci-auth: provider "miaou": github_actions subject token: the job's claims do not match oauth2.expectClaims`,
      );
      expect(claimsError.message).toContain(
        "(nothing was sent):\n  repository  acme/app              ✓ acme/*\n  ref         refs/heads/feature-x  ✗ expected refs/heads/main\n",
      );
      expect(claimsError.message).toContain("Run the job where the policy allows");

      // Nothing reached the IdP: no grant recorded there, no request to its token endpoint (discovery neither).
      expect(world.idp.grants.length).toBe(grantsBefore);
      expect(calls.filter((c) => c.url.startsWith(world.idp.issuer))).toEqual([]);
      // A claims mismatch is final: not retried (one CI token, not four).
      expect(ciTokenRequests() - ciBefore).toBe(1);
      expect(log.lines.some((l) => l["event"] === "grant_failed" && l["code"] === "ERR_SUBJECT_TOKEN_CLAIMS")).toBe(true);
      expectNoLeak([err.message, log.text()], secrets());
    });

    it("a matching job gets a token from the IdP", async () => {
      const { provider, log } = makeProvider({ expectClaims });
      const grantsBefore = world.idp.grants.length;

      const token = await provider.getToken();

      expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
      expect(world.idp.grants.slice(grantsBefore)).toEqual([
        expect.objectContaining({ ok: true, clientId: IDP_CLIENTS.none, repository: "acme/app" }),
      ]);
      expectNoLeak([log.text()], secrets());
    });

    it("a list of patterns lets a tag through, and an array aud matches any of its values", async () => {
      world.ci.claims = { ref: "refs/tags/v1.2.0" };
      const { provider } = makeProvider({ expectClaims: { ref: ["refs/heads/main", "refs/tags/v*"], aud: world.idp.issuer } });
      const grantsBefore = world.idp.grants.length;

      const token = await provider.getToken();

      expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
      expect(world.idp.grants.length).toBe(grantsBefore + 1);
    });

    it("a claim the token lacks fails as (missing), before the IdP", async () => {
      const { provider } = makeProvider({ expectClaims: { repository: "acme/app", environment: "production" } });
      const grantsBefore = world.idp.grants.length;

      const err = await rejectionOf(provider.getToken());

      expect(err).toBeInstanceOf(lib.SubjectTokenClaimsError);
      expect((err as SubjectTokenClaimsError).table.split("\n")).toEqual([
        "  repository   acme/app   ✓ acme/app",
        "  environment  (missing)  ✗ expected production",
      ]);
      expect(world.idp.grants.length).toBe(grantsBefore);
    });
  });
});
