/**
 * Fault injection on loopback: a proxy in front of the real IdP (and of the CI token service) injects 5xx, 429,
 * resets, stalls, redirects, garbage and outages. The plugin's chain (TokenProvider) must retry what is transient,
 * never retry a refusal, never send a wrong token, keep serving a valid token through an outage, and say what
 * happened without leaking anything. Runs against src/ and against the packed package (test/support/under-test.ts).
 */
import { inspect } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { OAuth2Input, RetriesExhaustedError } from "../src/lib.js";
// The test's oracle for when a refresh is due: the rule as the sources state it.
import { refreshAt } from "../src/cache/token-cache.js";
import { startCiIssuer, type CiIssuer } from "./support/ci-issuer.js";
import { startFaultProxy, startProxiedIdp, type FaultProxy, type ProxiedIdp } from "./support/fault-proxy.js";
import { expectNoLeak, rejectionOf } from "./support/harness.js";
import { UNDER_TEST, captureWith, parseWith } from "./support/under-test.js";

const PROVIDER = "miaou";
let ci: CiIssuer;
let ciProxy: FaultProxy;
let proxied: ProxiedIdp;
let now = Date.now();
let sleeps: number[] = [];

beforeAll(async () => {
  ci = await startCiIssuer();
  ciProxy = await startFaultProxy(ci.issuer);
  proxied = await startProxiedIdp({ ciIssuer: ci.issuer, ciJwksUrl: ci.jwksUrl });
});
afterAll(async () => {
  await proxied?.close();
  await ciProxy?.close();
  await ci?.close();
});
afterEach(() => {
  proxied.proxy.clearFaults();
  ciProxy.clearFaults();
});

const idp = () => proxied.idp;
const idpProxy = () => proxied.proxy;
const tokenRequests = () => idpProxy().requests.filter((r) => r.path.startsWith("/token")).length;
const ciTokenRequests = () => ciProxy.requests.filter((r) => r.path.startsWith("/_apis/token")).length;

/**
 * The time limit of the cases that stall a request on purpose. Long enough that a healthy loopback answer never hits
 * it on a loaded 2-core runner (0.5 s was hit there), short enough to keep the stalls quick. Other cases keep the
 * default 10 s.
 */
const STALL_S = 3;
/** A stalled body lasts longer than any limit above. */
const STALL_BODY_MS = 20_000;

function secrets() {
  return [
    ...ci.tokensIssued.map((value, i) => ({ label: `CI token #${i}`, value })),
    ...[...idp().issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "request token", value: ci.requestToken },
  ];
}

describe.each(UNDER_TEST)("$name", ({ lib }) => {
  function makeProvider(input: Partial<OAuth2Input> = {}) {
    now = Date.now();
    sleeps = [];
    const log = captureWith(lib, "trace");
    const config = parseWith(lib, {
      issuer: idp().issuer,
      clientId: "opencode-ci",
      scopes: ["openid"],
      subjectTokenSource: { type: "github_actions", audience: idp().issuer },
      ...input,
    });
    const provider = lib.createTokenProvider(PROVIDER, config, {
      env: { ACTIONS_ID_TOKEN_REQUEST_URL: `${ciProxy.url}/_apis/token?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken },
      now: () => now,
      logger: log.logger,
      // Waits are recorded and skipped, and move the injected clock, so backoff is observable without real time.
      retry: {
        sleep: async (ms) => {
          sleeps.push(ms);
          now += ms;
        },
        random: () => 0.5,
      },
    });
    return { provider, log };
  }

  describe("transient faults at the token endpoint are retried", () => {
    it.each([
      ["HTTP 503 (HTML)", { kind: "status", status: 503, body: "<html>maintenance</html>" }, "HTTP 503"],
      ["HTTP 502 with an OAuth body", { kind: "status", status: 502, body: { error: "temporarily_unavailable" } }, "HTTP 502"],
      ["a connection reset", { kind: "reset" }, "could not connect"],
      ["no answer (header timeout)", { kind: "hang" }, `no answer within ${STALL_S}s`],
      [
        "a body that stalls past the timeout",
        { kind: "slow-body", ms: STALL_BODY_MS, status: 200, body: {} },
        `no answer within ${STALL_S}s`,
      ],
    ] as const)("%s, then success: one extra request, the token is the IdP's", async (_label, fault, summary) => {
      const { provider, log } = makeProvider({ timeoutSeconds: STALL_S });
      await provider.client(); // discovery first, so only token requests are counted
      const before = tokenRequests();
      idpProxy().inject("/token", fault);
      const token = await provider.getToken();
      expect(idp().issuedTokens.has(token.value)).toBe(true);
      expect(tokenRequests() - before).toBe(2);
      expect(sleeps).toEqual([250]);
      const retrying = log.lines.filter((l) => l["event"] === "retrying");
      expect(retrying).toMatchObject([{ level: 40, step: "grant", attempt: 1, delayMs: 250 }]);
      expect(String(retrying[0]?.["msg"])).toContain(summary);
      expectNoLeak([log.text()], secrets());
    });

    it("HTTP 429 with Retry-After waits exactly as asked", async () => {
      const { provider } = makeProvider();
      await provider.client();
      idpProxy().inject("/token", { kind: "status", status: 429, body: { error: "slow_down" }, headers: { "retry-after": "3" } });
      await provider.getToken();
      expect(sleeps).toEqual([3_000]);
    });

    it("a persistent 503 gives up within the budget, and the error lists every attempt", async () => {
      const { provider } = makeProvider({ retry: { maxAttempts: 3 } });
      await provider.client();
      const before = tokenRequests();
      idpProxy().outage("/token", { kind: "status", status: 503, body: "down" });
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.RetriesExhaustedError);
      expect(err).toMatchObject({ code: "ERR_GRANT_REQUEST", step: "grant", providerId: PROVIDER });
      expect((err as RetriesExhaustedError).attempts).toEqual(["HTTP 503", "HTTP 503", "HTTP 503"]);
      expect(err.message).toMatch(
        /Gave up after 3 attempts in [\d.]+s \(retry\.maxAttempts is 3\): 1\) HTTP 503; 2\) HTTP 503; 3\) HTTP 503\./,
      );
      expect(tokenRequests() - before).toBe(3);
      expect(sleeps).toEqual([250, 500]);
    });

    it("re-mints the subject token before a retry when it is about to expire", async () => {
      const { provider } = makeProvider();
      await provider.client();
      const ciBefore = ciTokenRequests();
      // A 429 asking for 4.5 minutes: the 5-minute CI token has under 60 s left afterwards.
      idpProxy().inject("/token", { kind: "status", status: 429, body: { error: "slow_down" }, headers: { "retry-after": "270" } });
      const token = await provider.getToken().catch((e: unknown) => e);
      // The default budget is 30 s, so such a wait is refused outright...
      expect(token).toBeInstanceOf(lib.RetriesExhaustedError);
      expect((token as Error).message).toContain("the server asked to wait 270s, beyond the retry budget of 30s");
      // ...but with a budget that allows it, the retry presents a fresh subject token.
      const { provider: patient } = makeProvider({ retry: { maxElapsedSeconds: 600 } });
      await patient.client();
      const before = ciTokenRequests();
      idpProxy().inject("/token", { kind: "status", status: 429, body: { error: "slow_down" }, headers: { "retry-after": "270" } });
      expect(idp().issuedTokens.has((await patient.getToken()).value)).toBe(true);
      expect(ciTokenRequests() - before).toBe(2);
      expect(ciTokenRequests() - ciBefore).toBe(3);
    });
  });

  describe("what is never retried", () => {
    it("an OAuth refusal (400 invalid_grant): one request, the IdP's words", async () => {
      const { provider } = makeProvider();
      await provider.client();
      const before = tokenRequests();
      idpProxy().inject("/token", {
        kind: "status",
        status: 400,
        body: { error: "invalid_grant", error_description: "audience mismatch" },
      });
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.GrantRefusedError);
      expect(err).toMatchObject({ error: "invalid_grant", errorDescription: "audience mismatch", transient: false });
      expect(tokenRequests() - before).toBe(1);
      expect(sleeps).toEqual([]);
    });

    it("a redirect on the token endpoint is not followed: the target never sees the subject token", async () => {
      const target = await startFaultProxy(idp().serverUrl);
      try {
        const { provider } = makeProvider();
        await provider.client();
        idpProxy().inject("/token", { kind: "redirect", location: `${target.url}/token`, status: 307 });
        const err = await rejectionOf(provider.getToken());
        expect(err).toBeInstanceOf(lib.GrantRequestError);
        expect(err.message).toContain("answered HTTP 307. It is a redirect, which is not followed");
        expect(target.requests).toEqual([]);
        expect(sleeps).toEqual([]);
      } finally {
        await target.close();
      }
    });

    it.each([
      ["non-JSON 200", (_a: { body: string }) => ({ body: "<html>login</html>", headers: { "content-type": "text/html" } }), /not JSON/],
      [
        "a missing access_token",
        (a: { body: string }) => ({ body: JSON.stringify({ ...JSON.parse(a.body), access_token: undefined }) }),
        /"access_token" property must be a string \(OAUTH_INVALID_RESPONSE\)/,
      ],
      [
        "token_type mac",
        (a: { body: string }) => ({ body: JSON.stringify({ ...JSON.parse(a.body), token_type: "mac" }) }),
        /token_type this plugin cannot send/,
      ],
      [
        "a negative expires_in",
        (a: { body: string }) => ({ body: JSON.stringify({ ...JSON.parse(a.body), expires_in: -5 }) }),
        /"expires_in" property must be a non-negative number/,
      ],
      [
        "a non-numeric expires_in",
        (a: { body: string }) => ({ body: JSON.stringify({ ...JSON.parse(a.body), expires_in: "abc" }) }),
        /"expires_in" property must be a number/,
      ],
    ])("garbage from the IdP (%s): a clear error, no retry, no header, no leak", async (_label, transform, message) => {
      const { provider } = makeProvider();
      await provider.client();
      const before = tokenRequests();
      idpProxy().inject("/token", {
        kind: "rewrite",
        transform: (a) => ({ status: 200, headers: { ...a.headers, "content-type": "application/json" }, ...transform(a) }),
      });
      const err = await rejectionOf(provider.getToken());
      expect(err).toBeInstanceOf(lib.TokenResponseError);
      expect(err.message).toMatch(message);
      expect(tokenRequests() - before).toBe(1);
      expect(provider.peek()).toBeUndefined();
      // The garbage answer held a real access token: it must not be reachable from the error.
      expectNoLeak([err.message, String(err), inspect(err, { depth: 10 })], secrets());
    });
  });

  describe("discovery and the CI token service", () => {
    it("discovery is retried like any transient fault, and shared by every provider of the issuer", async () => {
      // A fresh fetch identity, so this test gets its own discovery cache entry.
      const fetchImpl: typeof fetch = (input, init) => fetch(input, init);
      const before = idpProxy().requests.filter((r) => r.path.startsWith("/.well-known/openid-configuration")).length;
      idpProxy().inject("/.well-known/openid-configuration", { kind: "status", status: 503, body: "starting" });
      const make = () => {
        const { provider } = makeProvider();
        return lib.createTokenProvider(PROVIDER, provider.config, {
          fetch: fetchImpl,
          env: {
            ACTIONS_ID_TOKEN_REQUEST_URL: `${ciProxy.url}/_apis/token?api-version=2.0`,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken,
          },
          logger: captureWith(lib).logger,
          retry: { sleep: async () => {} },
        });
      };
      const [a, b] = [make(), make()];
      const [ta, tb] = await Promise.all([a.getToken(), b.getToken()]);
      expect(idp().issuedTokens.has(ta.value) && idp().issuedTokens.has(tb.value)).toBe(true);
      const discoveries = idpProxy().requests.filter((r) => r.path.startsWith("/.well-known/openid-configuration")).length - before;
      // One failed attempt and one success, shared by both providers.
      expect(discoveries).toBe(2);
    });

    it("a CI token service whose body stalls past timeoutSeconds is a timeout, retried", async () => {
      const { provider, log } = makeProvider({ timeoutSeconds: STALL_S });
      const before = ciTokenRequests();
      ciProxy.inject("/_apis/token", { kind: "slow-body", ms: STALL_BODY_MS, status: 200, body: { value: "never arrives" } });
      expect(idp().issuedTokens.has((await provider.getToken()).value)).toBe(true);
      expect(ciTokenRequests() - before).toBe(2);
      const retrying = log.lines.find((l) => l["event"] === "retrying");
      expect(retrying).toMatchObject({ step: "subject-token" });
      expect(String(retrying?.["msg"])).toContain(`no answer within ${STALL_S}s`);
    });

    it("a redirect from the CI token service is refused, not retried, and the request token never reaches the target", async () => {
      const target = await startFaultProxy(ci.issuer);
      try {
        const { provider } = makeProvider();
        const before = ciTokenRequests();
        ciProxy.inject("/_apis/token", { kind: "redirect", location: `${target.url}/_apis/token?api-version=2.0`, status: 302 });
        const err = await rejectionOf(provider.getToken());
        expect(err.message).toMatch(
          /the GitHub token service at http:\/\/127\.0\.0\.1:\d+ answered a redirect \(HTTP 302\), which is not followed: the request token is only sent to ACTIONS_ID_TOKEN_REQUEST_URL\./,
        );
        expect(err).toMatchObject({ code: "ERR_SUBJECT_TOKEN_REQUEST", transient: false });
        expect(ciTokenRequests() - before).toBe(1);
        expect(target.requests).toEqual([]);
      } finally {
        await target.close();
      }
    });

    it("a discovery document that stalls past the timeout is reported as a timeout and retried", async () => {
      const fetchImpl: typeof fetch = (input, init) => fetch(input, init);
      const { provider: base, log } = makeProvider({ timeoutSeconds: STALL_S });
      const provider = lib.createTokenProvider(PROVIDER, base.config, {
        fetch: fetchImpl,
        env: {
          ACTIONS_ID_TOKEN_REQUEST_URL: `${ciProxy.url}/_apis/token?api-version=2.0`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken,
        },
        logger: log.logger,
        retry: { sleep: async () => {} },
      });
      idpProxy().inject("/.well-known/openid-configuration", { kind: "slow-body", ms: STALL_BODY_MS, status: 200, body: {} });
      expect(idp().issuedTokens.has((await provider.getToken()).value)).toBe(true);
      const retrying = log.lines.find((l) => l["event"] === "retrying");
      expect(retrying).toMatchObject({ step: "discovery" });
      expect(String(retrying?.["msg"])).toContain(`no answer within ${STALL_S}s`);
    });

    it("a CI token service blip (503, then a reset) is retried, and the token still carries the right audience", async () => {
      const { provider } = makeProvider();
      const before = ciTokenRequests();
      ciProxy.inject("/_apis/token", { kind: "status", status: 503, body: "busy" }, { kind: "reset" });
      expect(idp().issuedTokens.has((await provider.getToken()).value)).toBe(true);
      expect(ciTokenRequests() - before).toBe(3);
      expect(sleeps).toEqual([250, 500]);
    });
  });

  describe("an IdP outage while a token is valid", () => {
    it("never fails a request: the current token is served, the refresh retried on the next call, then recovered", async () => {
      // A 60 s access token: its refresh window (45 s on) lies inside the 5-minute CI tokens' life, which the
      // injected clock also judges.
      idp().setAccessTokenTtl(60);
      const { provider, log } = makeProvider({ retry: { maxAttempts: 1 } });
      const first = await provider.getToken().finally(() => idp().setAccessTokenTtl(600));
      idpProxy().outage("/token", { kind: "status", status: 503, body: "down" });
      const before = tokenRequests();
      now = refreshAt(first) + 1;
      const staleServed = () => log.lines.filter((l) => l["event"] === "refresh_failed_serving_cached").length;
      for (let i = 0; i < 3; i++) {
        expect(await provider.getToken()).toBe(first);
        // Wait for this call's background refresh to fail (reported as stale-served), however slow the machine is.
        await vi.waitFor(() => expect(staleServed()).toBe(i + 1), { timeout: 60_000, interval: 5 });
      }
      expect(tokenRequests() - before).toBeGreaterThanOrEqual(2);
      expect(log.lines.some((l) => l["event"] === "refresh_failed_serving_cached")).toBe(true);
      // After expiry, an outage is an error: an expired token is never served.
      now = first.expiresAt + 1;
      await expect(provider.getToken()).rejects.toBeInstanceOf(lib.GrantRequestError);
      // The IdP comes back: the next call gets a new token.
      idpProxy().outage("/token", undefined);
      const next = await provider.getToken();
      expect(next.value).not.toBe(first.value);
      expect(idp().issuedTokens.has(next.value)).toBe(true);
    });
  });
});
