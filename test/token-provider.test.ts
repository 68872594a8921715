/**
 * The token provider end to end on loopback: the fake GitHub Actions token service → the real oidc-provider IdP.
 * The clock is injected (a mutable `now`) so refresh and expiry are exact; CI tokens live an hour here so a fake
 * clock far ahead of the real one still sees them as valid locally. Runs against src/ and against the packed
 * package's `/lib` (test/support/under-test.ts).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";

import type { OAuth2Config, OAuth2Input, TokenProvider } from "../src/lib.js";
// The test's oracle for when a refresh is due: the rule as the sources state it.
import { refreshAt } from "../src/cache/token-cache.js";
import { expectNoLeak, fp, recordingFetch, rejectionOf } from "./support/harness.js";
import type { RecordedCall } from "./support/harness.js";
import { UNDER_TEST, captureWith, parseWith } from "./support/under-test.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld } from "./support/world.js";
import type { World } from "./support/world.js";

const PROVIDER = "miaou";

let world: World;
let dir: string;
let now: number;

beforeAll(async () => {
  world = await startWorld({ ci: { lifetimeSeconds: 3600 } });
  dir = await mkdtemp(join(tmpdir(), "ci-auth-provider-"));
});

afterAll(async () => {
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  world.ci.claims = {};
});

function githubEnv(): NodeJS.ProcessEnv {
  return { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken };
}

const ciTokenRequests = () => world.ci.requests.filter((r) => r.path === "/_apis/token").length;
const tokenEndpointCalls = (calls: RecordedCall[]) => calls.filter((c) => c.url === world.idp.tokenEndpoint);

/** Everything secret the world has handed out so far. */
function worldSecrets() {
  return [
    ...world.ci.tokensIssued.map((value, i) => ({ label: `CI token #${i}`, value })),
    ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", value: world.ci.requestToken },
  ];
}

/**
 * Every string reachable from `root` through own, private (#field) and promise-result slots, read through the V8
 * inspector: `#private` fields are invisible to JSON.stringify and util.inspect, so those would prove nothing.
 * Functions are not entered (closures are not walked).
 */
async function reachableStrings(root: object, maxDepth = 7): Promise<string[]> {
  const session = new Session();
  session.connect();
  const key = `__reachable_${process.pid}_${Date.now()}`;
  (globalThis as Record<string, unknown>)[key] = root;
  const strings: string[] = [];
  let budget = 4000;
  try {
    const { result } = await session.post("Runtime.evaluate", { expression: `globalThis[${JSON.stringify(key)}]` });
    const walk = async (objectId: string, depth: number): Promise<void> => {
      if (depth > maxDepth || --budget < 0) return;
      const props = await session.post("Runtime.getProperties", { objectId, ownProperties: true });
      const slots = [
        ...props.result.map((p) => p.value),
        // Returned by V8 for #private fields, missing from @types/node 20's protocol typings.
        ...((props as { privateProperties?: Array<{ value?: (typeof props.result)[number]["value"] }> }).privateProperties ?? []).map(
          (p) => p.value,
        ),
        ...(props.internalProperties ?? []).filter((p) => p.name === "[[PromiseResult]]").map((p) => p.value),
      ];
      for (const value of slots) {
        if (!value) continue;
        if (value.type === "string" && typeof value.value === "string") strings.push(value.value);
        else if (value.type === "object" && value.objectId && value.subtype !== "null") await walk(value.objectId, depth + 1);
      }
    };
    if (result.objectId) await walk(result.objectId, 0);
  } finally {
    delete (globalThis as Record<string, unknown>)[key];
    session.disconnect();
  }
  expect(budget).toBeGreaterThan(0); // the walk was complete
  return strings;
}

describe.each(UNDER_TEST)("$name", ({ lib }) => {
  function config(input: Partial<OAuth2Input> = {}): OAuth2Config {
    return parseWith(lib, {
      issuer: world.idp.issuer,
      clientId: IDP_CLIENTS.none,
      scopes: ["models.read"],
      subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
      ...input,
    });
  }

  interface Harness {
    provider: TokenProvider;
    log: ReturnType<typeof captureWith>;
    calls: RecordedCall[];
  }

  function makeProvider(input: Partial<OAuth2Input> = {}, env: NodeJS.ProcessEnv = githubEnv()): Harness {
    now = Date.now();
    const log = captureWith(lib, "trace");
    const rec = recordingFetch();
    const provider = lib.createTokenProvider(PROVIDER, config(input), { env, fetch: rec.fetch, now: () => now, logger: log.logger });
    return { provider, log, calls: rec.calls };
  }

  describe("getToken against the world (github_actions source)", () => {
    it("returns a token issued by the IdP for this job, with the configured scope and the IdP's lifetime", async () => {
      const { provider, calls } = makeProvider();
      const token = await provider.getToken();
      expect(world.idp.issuedTokens.has(token.value)).toBe(true);
      expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
      expect({ ...token, value: fp(token.value) }).toEqual({
        value: fp(token.value),
        tokenType: "Bearer",
        issuedAt: now,
        expiresAt: now + 600_000,
        expirySource: "expires_in",
        scope: "models.read",
      });
      expect(world.idp.grants.at(-1)).toMatchObject({ clientId: IDP_CLIENTS.none, ok: true, repository: "acme/app", scope: "models.read" });
      expect(calls.filter((c) => c.method === "POST").length).toBe(1);
      // The GitHub token was requested with the IdP as audience, and with the job's request token.
      const ciCall = world.ci.requests.filter((r) => r.path === "/_apis/token").at(-1);
      expect(ciCall?.query).toEqual({ "api-version": "2.0", audience: world.idp.issuer });
      expect(fp(ciCall?.authorization)).toBe(fp(`Bearer ${world.ci.requestToken}`));
      // One CI token (first: a job-side problem must surface before any IdP call), one discovery, one grant,
      // all through the injected fetch.
      expect(
        calls.map((c) => `${c.method} ${new URL(c.url).origin === world.idp.issuer ? "idp" : "ci"}${new URL(c.url).pathname}`),
      ).toEqual(["GET ci/_apis/token", "GET idp/.well-known/openid-configuration", "POST idp/token"]);
    });

    it("second getToken is served from the cache: no grant, no CI request", async () => {
      const { provider } = makeProvider();
      const first = await provider.getToken();
      const grants = world.idp.grants.length;
      const ci = ciTokenRequests();
      now += 60_000;
      const again = await provider.getToken();
      expect(again).toBe(first);
      expect(provider.peek()).toBe(first);
      expect(world.idp.grants.length).toBe(grants);
      expect(ciTokenRequests()).toBe(ci);
    });

    it("mints a fresh subject token for every grant (2 grants -> 2 CI requests, 2 distinct CI tokens, discovery once)", async () => {
      const { provider, calls } = makeProvider();
      const ciBefore = world.ci.tokensIssued.length;
      const reqBefore = ciTokenRequests();
      const first = await provider.getToken();
      provider.invalidate(first.value);
      const second = await provider.getToken();
      expect(ciTokenRequests() - reqBefore).toBe(2);
      const minted = world.ci.tokensIssued.slice(ciBefore);
      expect(minted.length).toBe(2);
      expect(fp(minted[0])).not.toBe(fp(minted[1]));
      expect(fp(first.value)).not.toBe(fp(second.value));
      expect(calls.filter((c) => c.url.endsWith("/.well-known/openid-configuration")).length).toBe(1);
    });

    it("keeps no subject token: none is reachable from the TokenProvider (private fields included), the access token is", async () => {
      const { provider, log } = makeProvider();
      const ciBefore = world.ci.tokensIssued.length;
      const first = await provider.getToken();
      provider.invalidate(first.value);
      const token = await provider.getToken();
      const minted = world.ci.tokensIssued.slice(ciBefore);
      expect(minted.length).toBe(2);

      // What JSON and util.inspect can see (public fields only: #private state needs the inspector walk below).
      expectNoLeak(
        [JSON.stringify(provider), inspect(provider, { depth: 10, showHidden: true })],
        minted.map((value, i) => ({ label: `subject token #${i}`, value })),
      );
      const strings = await reachableStrings(provider);
      // Control: the walk does reach private state, since the cached access token sits in #cache -> #current.
      expect(strings.includes(token.value)).toBe(true);
      expectNoLeak(
        strings,
        minted.map((value, i) => ({ label: `subject token #${i}`, value })),
      );
      // And no log line (trace level) carries a subject token, an access token or the request token.
      expect(log.lines.length).toBeGreaterThan(3);
      expectNoLeak([log.text()], worldSecrets());
    });

    it("past refreshAt (injected clock) a new grant replaces the token, served meanwhile from cache", async () => {
      const { provider } = makeProvider();
      const first = await provider.getToken();
      const grants = world.idp.grants.length;

      now = refreshAt(first) - 1;
      expect(await provider.getToken()).toBe(first);
      expect(world.idp.grants.length).toBe(grants);

      now = refreshAt(first);
      expect(await provider.getToken()).toBe(first); // still valid: no caller waits for the refresh
      await vi.waitFor(() => expect(provider.peek()).toBeDefined(), { timeout: 5000, interval: 5 });
      const second = provider.peek();
      expect(world.idp.grants.length).toBe(grants + 1);
      expect(second && world.idp.issuedTokens.has(second.value)).toBe(true);
      expect(fp(second?.value)).not.toBe(fp(first.value));
      expect(second?.issuedAt).toBe(now);
    });

    it("100 simultaneous getToken() after expiry cause exactly one grant at the IdP", async () => {
      const { provider } = makeProvider();
      const first = await provider.getToken();
      now = first.expiresAt + 1;
      const grants = world.idp.grants.length;
      const ci = ciTokenRequests();
      const tokens = await Promise.all(Array.from({ length: 100 }, () => provider.getToken()));
      expect(world.idp.grants.length - grants).toBe(1);
      expect(ciTokenRequests() - ci).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(fp(tokens[0]?.value)).not.toBe(fp(first.value));
      expect(world.idp.issuedTokens.has(tokens[0]?.value ?? "")).toBe(true);
    });

    it("invalidate + getToken -> a new grant and a different token", async () => {
      const { provider } = makeProvider();
      const first = await provider.getToken();
      const grants = world.idp.grants.length;
      provider.invalidate(first.value);
      expect(provider.peek()).toBeUndefined();
      const second = await provider.getToken();
      expect(world.idp.grants.length).toBe(grants + 1);
      expect(fp(second.value)).not.toBe(fp(first.value));
      expect(world.idp.issuedTokens.has(second.value)).toBe(true);
    });

    it("an early refresh that fails serves the cached token and logs a warning", async () => {
      const { provider, log } = makeProvider();
      const first = await provider.getToken();
      now = refreshAt(first) + 1;
      // 403 is not retried, so the background refresh fails outright.
      world.ci.failNextRequests(1, 403);
      expect(await provider.getToken()).toBe(first);
      await vi.waitFor(() => expect(log.lines.some((l) => l["event"] === "refresh_failed_serving_cached")).toBe(true), {
        timeout: 5000,
        interval: 5,
      });
      const warn = log.lines.find((l) => l["event"] === "refresh_failed_serving_cached");
      expect(warn).toMatchObject({ code: "ERR_SUBJECT_TOKEN_REQUEST", expiresAt: new Date(first.expiresAt).toISOString() });
      expect(String(warn?.["msg"])).toMatch(/HTTP 403/);
      // The next call retries, and it works.
      expect(await provider.getToken()).toBe(first);
      await vi.waitFor(() => expect(provider.peek()).toBeDefined(), { timeout: 5000, interval: 5 });
      expect(fp(provider.peek()?.value)).not.toBe(fp(first.value));
    });
  });

  describe("failures before the grant never reach the token endpoint", () => {
    it("a locally expired subject token (file source) fails without a grant, naming the source and the expiry", async () => {
      const nowSec = Math.floor(Date.now() / 1000);
      const exp = nowSec - 120;
      const expired = await world.ci.mint({ aud: world.idp.issuer, iat: nowSec - 600, exp });
      const path = join(dir, "expired.jwt");
      await writeFile(path, `${expired}\n`, { mode: 0o600 });
      const { provider, calls, log } = makeProvider({ subjectTokenSource: { type: "file", path, audience: world.idp.issuer } });
      const grants = world.idp.grants.length;

      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenInvalidError);
      expect(err).toMatchObject({ code: "ERR_SUBJECT_TOKEN_INVALID", source: "file", providerId: PROVIDER });
      expect(err.message).toContain("file subject token");
      expect(err.message).toContain(`expired at ${new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, "Z")}`);
      expect(world.idp.grants.length).toBe(grants);
      expect(tokenEndpointCalls(calls)).toEqual([]);
      expectNoLeak([err.message, String(err), log.text()], [{ label: "the expired subject token", value: expired }]);
      // Nothing is cached: a second attempt fails the same way, again without a grant.
      await expect(provider.getToken()).rejects.toBeInstanceOf(lib.SubjectTokenInvalidError);
      expect(world.idp.grants.length).toBe(grants);
    });

    it("a subject token for another audience (file source) fails locally, without a grant", async () => {
      const wrongAud = await world.ci.mint({ aud: "https://github.com/acme" });
      const path = join(dir, "wrong-aud.jwt");
      await writeFile(path, wrongAud, { mode: 0o600 });
      const { provider, calls } = makeProvider({ subjectTokenSource: { type: "file", path, audience: world.idp.issuer } });
      const grants = world.idp.grants.length;
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenInvalidError);
      expect(err.message).toContain(`does not include the configured audience "${world.idp.issuer}"`);
      expect(world.idp.grants.length).toBe(grants);
      expect(tokenEndpointCalls(calls)).toEqual([]);
    });

    it("missing GitHub variables fail with the permission hint, without a CI request or a grant", async () => {
      const { provider, calls } = makeProvider({}, {});
      const grants = world.idp.grants.length;
      const ci = ciTokenRequests();
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenUnavailableError);
      expect(err).toMatchObject({ code: "ERR_SUBJECT_TOKEN_UNAVAILABLE", source: "github_actions", providerId: PROVIDER });
      expect(err.message).toMatch(/ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set/);
      expect(err.message).toMatch(/id-token: write/);
      expect(world.idp.grants.length).toBe(grants);
      expect(ciTokenRequests()).toBe(ci);
      expect(tokenEndpointCalls(calls)).toEqual([]);
    });

    it("a GitHub token service that refuses (403, not transient) surfaces as SubjectTokenRequestError at once, without a grant", async () => {
      const { provider } = makeProvider();
      const grants = world.idp.grants.length;
      const ciBefore = ciTokenRequests();
      world.ci.failNextRequests(1, 403);
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenRequestError);
      expect(err).toMatchObject({ status: 403, transient: false });
      expect(ciTokenRequests() - ciBefore).toBe(1);
      expect(world.idp.grants.length).toBe(grants);
      // Not cached: the next call works.
      expect(world.idp.issuedTokens.has((await provider.getToken()).value)).toBe(true);
    });
  });

  describe("IdP refusals", () => {
    it("a repository the IdP does not trust surfaces as GrantRefusedError with the IdP's words, logged with the claims", async () => {
      world.ci.claims = { repository: "evil/fork", repository_owner: "evil", sub: "repo:evil/fork:ref:refs/heads/main" };
      const { provider, log } = makeProvider();
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.GrantRefusedError);
      expect(err).toMatchObject({
        code: "ERR_GRANT_REFUSED",
        providerId: PROVIDER,
        grantType: "jwt_bearer",
        error: "invalid_grant",
        errorDescription: "repository evil/fork is not allowed",
      });
      expect(world.idp.grants.at(-1)).toMatchObject({ ok: false, error: "invalid_grant", repository: "evil/fork" });
      const failed = log.lines.find((l) => l["event"] === "grant_failed");
      expect(failed).toMatchObject({ level: 50, code: "ERR_GRANT_REFUSED", claims: { repository: "evil/fork", aud: world.idp.issuer } });
      expectNoLeak([err.message, String(err), log.text()], worldSecrets());
      // A refusal is not cached either: once the claims are right, the next call gets a token.
      world.ci.claims = {};
      expect(world.idp.issuedTokens.has((await provider.getToken()).value)).toBe(true);
    });

    it("the same failure repeated is logged at error once, then at debug", async () => {
      world.ci.claims = { repository: "evil/fork" };
      const { provider, log } = makeProvider();
      for (let i = 0; i < 3; i++) await expect(provider.getToken()).rejects.toBeInstanceOf(lib.GrantRefusedError);
      const levels = log.lines.filter((l) => l["event"] === "grant_failed").map((l) => l["level"]);
      expect(levels).toEqual([50, 20, 20]);
    });
  });
});
