/**
 * Proves the fault proxy (test/support/fault-proxy.ts): every fault kind with plain fetch in front of the CI
 * issuer, then through an IdP whose issuer is the proxy, with openid-client 6 directly (not the plugin's src).
 * The openid-client table records precisely how each fault surfaces: error class, code, message and cause.
 */
import { ClientError, None, ResponseBodyError, allowInsecureRequests, discovery, genericGrantRequest } from "openid-client";
import type { Configuration } from "openid-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { startCiIssuer } from "./support/ci-issuer.js";
import type { CiIssuer } from "./support/ci-issuer.js";
import { startFaultProxy, startProxiedIdp } from "./support/fault-proxy.js";
import type { Fault, FaultProxy, ProxiedIdp } from "./support/fault-proxy.js";
import { closedPort, rejectionOf } from "./support/harness.js";
import { JWT_BEARER } from "./support/idp.js";

let ci: CiIssuer;

beforeAll(async () => {
  ci = await startCiIssuer();
});

afterAll(async () => {
  await ci?.close();
});

/** The error (or cause) chain as plain data: class, name, code, message; a Response as its status; bodies with tokens redacted. */
function shape(value: unknown): unknown {
  if (value instanceof Response) return { response: value.status };
  if (value instanceof Error || value instanceof DOMException) {
    const out: Record<string, unknown> = { class: value.constructor.name, name: value.name, message: value.message };
    if ("code" in value) out["code"] = value.code;
    if (value instanceof ResponseBodyError) {
      out["error"] = value.error;
      out["status"] = value.status;
    }
    if (value.cause !== undefined) out["cause"] = shape(value.cause);
    return out;
  }
  if (typeof value === "object" && value !== null) {
    return JSON.parse(
      JSON.stringify(value, (key, v: unknown) => (key === "access_token" && typeof v === "string" ? "<redacted>" : v)),
    ) as unknown;
  }
  return value;
}

describe("fault proxy with plain fetch (in front of the CI issuer)", () => {
  let proxy: FaultProxy;
  /** The GitHub-style token request through the proxy. */
  let tokenUrl: string;
  const auth = (): RequestInit => ({ headers: { authorization: `Bearer ${ci.requestToken}` } });

  beforeAll(async () => {
    proxy = await startFaultProxy(ci.issuer);
    tokenUrl = `${proxy.url}/_apis/token?api-version=2.0&audience=${encodeURIComponent("https://idp.example")}`;
  });

  afterEach(() => {
    proxy.clearFaults();
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it("passes method, path+query, headers and the answer through unchanged", async () => {
    const before = ci.requests.length;
    const res = await fetch(tokenUrl, auth());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const { value } = (await res.json()) as { value: string };
    expect(value).toBe(ci.tokensIssued.at(-1));
    expect(ci.requests.slice(before)).toEqual([
      {
        path: "/_apis/token",
        query: { "api-version": "2.0", audience: "https://idp.example" },
        authorization: `Bearer ${ci.requestToken}`,
      },
    ]);
    expect(proxy.requests.at(-1)).toEqual({
      method: "GET",
      path: "/_apis/token?api-version=2.0&audience=https%3A%2F%2Fidp.example",
      at: expect.any(Number),
    });
    expect(proxy.requests.at(-1)).not.toHaveProperty("fault");

    expect((await fetch(`${proxy.url}/_apis/token?api-version=2.0`)).status).toBe(401);
    const post = await fetch(`${proxy.url}/.well-known/jwks`, { method: "POST", body: "x=1" });
    expect(post.status).toBe(405);
    expect(proxy.requests.at(-1)).toMatchObject({ method: "POST", path: "/.well-known/jwks" });
  });

  it("status: a 503 (JSON body), then the upstream answers again", async () => {
    proxy.inject("/_apis/token", { kind: "status", status: 503, body: { message: "down for maintenance" } });
    const first = await fetch(tokenUrl, auth());
    expect(first.status).toBe(503);
    expect(first.headers.get("content-type")).toBe("application/json");
    expect(await first.json()).toEqual({ message: "down for maintenance" });
    const second = await fetch(tokenUrl, auth());
    expect(second.status).toBe(200);
    expect(proxy.requests.slice(-2).map((r) => r.fault)).toEqual(["status", undefined]);
  });

  it("status: 429 with Retry-After visible to the client, and a 500 HTML page", async () => {
    proxy.inject(
      "/_apis/token",
      { kind: "status", status: 429, headers: { "retry-after": "3" } },
      { kind: "status", status: 500, body: "<html><body>Internal Server Error</body></html>", headers: { "content-type": "text/html" } },
    );
    const limited = await fetch(tokenUrl, auth());
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("3");
    expect(await limited.text()).toBe("");
    const html = await fetch(tokenUrl, auth());
    expect(html.status).toBe(500);
    expect(html.headers.get("content-type")).toBe("text/html");
    expect(await html.text()).toContain("<html>");
    expect((await fetch(tokenUrl, auth())).status).toBe(200);
  });

  it('reset: fetch rejects with TypeError "fetch failed" (cause ECONNRESET), and is not retried', async () => {
    proxy.inject("/_apis/token", { kind: "reset" });
    const before = proxy.requests.length;
    const err = await rejectionOf(fetch(tokenUrl, auth()));
    expect(err).toBeInstanceOf(TypeError);
    expect(shape(err)).toMatchObject({ message: "fetch failed", cause: { code: "ECONNRESET", message: "read ECONNRESET" } });
    expect(proxy.requests.slice(before).map((r) => r.fault)).toEqual(["reset"]);
    expect((await fetch(tokenUrl, auth())).status).toBe(200);
  });

  it("hang: a client-side AbortSignal.timeout fires; with ms the answer is only late", async () => {
    proxy.inject("/_apis/token", { kind: "hang" });
    const started = Date.now();
    const err = await rejectionOf(fetch(tokenUrl, { ...auth(), signal: AbortSignal.timeout(200) }));
    expect(err).toBeInstanceOf(DOMException);
    expect(err.name).toBe("TimeoutError");
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);

    proxy.inject("/_apis/token", { kind: "hang", ms: 100 });
    const lateStart = Date.now();
    const late = await fetch(tokenUrl, auth());
    expect(late.status).toBe(200);
    expect(Date.now() - lateStart).toBeGreaterThanOrEqual(90);
    expect(proxy.requests.at(-1)?.fault).toBe("hang");
  });

  it("slow-body: headers arrive at once, the body read times out", async () => {
    proxy.inject("/_apis/token", { kind: "slow-body", ms: 2_000, body: { value: "never in time" } });
    const started = Date.now();
    const res = await fetch(tokenUrl, { ...auth(), signal: AbortSignal.timeout(200) });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const err = await rejectionOf(res.text());
    expect(err).toBeInstanceOf(DOMException);
    expect(err.name).toBe("TimeoutError");

    // Without a body of its own it holds back the upstream's body; a patient client gets it.
    proxy.inject("/_apis/token", { kind: "slow-body", ms: 100 });
    const patient = await fetch(tokenUrl, auth());
    expect(patient.status).toBe(200);
    expect(((await patient.json()) as { value: string }).value).toBe(ci.tokensIssued.at(-1));
  });

  it("redirect: a manual client sees 302 and the target is not requested; a following client requests it", async () => {
    proxy.inject("/_apis/token", { kind: "redirect", location: "/moved/token" });
    const res = await fetch(tokenUrl, { ...auth(), redirect: "manual" });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/moved/token");
    expect(proxy.requests.at(-1)?.fault).toBe("redirect");
    expect(proxy.requests.some((r) => r.path.startsWith("/moved"))).toBe(false);

    proxy.inject("/.well-known/openid-configuration", { kind: "redirect", location: "/.well-known/jwks", status: 308 });
    const followed = await fetch(`${proxy.url}/.well-known/openid-configuration`);
    expect(followed.status).toBe(200);
    expect(followed.url).toBe(`${proxy.url}/.well-known/jwks`);
    expect(proxy.requests.slice(-2).map((r) => [r.path, r.fault])).toEqual([
      ["/.well-known/openid-configuration", "redirect"],
      ["/.well-known/jwks", undefined],
    ]);
  });

  it("rewrite: forwards, then hands the client a corrupted answer", async () => {
    let seen: { status: number; contentType: string | undefined; hasValue: boolean } | undefined;
    proxy.inject("/_apis/token", {
      kind: "rewrite",
      transform: (upstream) => {
        seen = {
          status: upstream.status,
          contentType: upstream.headers["content-type"],
          hasValue: "value" in (JSON.parse(upstream.body) as object),
        };
        return { body: '{"value": ' };
      },
    });
    const issued = ci.tokensIssued.length;
    const res = await fetch(tokenUrl, auth());
    expect(seen).toEqual({ status: 200, contentType: "application/json; charset=utf-8", hasValue: true });
    expect(ci.tokensIssued.length).toBe(issued + 1);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("10");
    expect(await res.text()).toBe('{"value": ');

    proxy.inject("/_apis/token", {
      kind: "rewrite",
      transform: () => ({ status: 502, headers: { "content-type": "text/html" }, body: "<h1>Bad Gateway</h1>" }),
    });
    const html = await fetch(tokenUrl, auth());
    expect([html.status, html.headers.get("content-type"), await html.text()]).toEqual([502, "text/html", "<h1>Bad Gateway</h1>"]);
  });

  it("outage: every matching request fails until cleared; queued faults go first; other paths pass", async () => {
    proxy.outage(/^\/_apis\/token\b/, { kind: "status", status: 503, body: "outage" });
    proxy.inject("/_apis/token", { kind: "status", status: 504 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(tokenUrl, auth())).status);
    expect(statuses).toEqual([504, 503, 503]);
    expect((await fetch(`${proxy.url}/.well-known/jwks`)).status).toBe(200);

    proxy.outage(/^\/_apis\/token\b/, undefined);
    expect((await fetch(tokenUrl, auth())).status).toBe(200);
  });

  it("inject: faults are used once each, in order, by matching requests only", async () => {
    proxy.inject("/_apis/token", { kind: "status", status: 500 }, { kind: "status", status: 502 });
    expect((await fetch(`${proxy.url}/.well-known/jwks`)).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(tokenUrl, auth())).status);
    expect(statuses).toEqual([500, 502, 200]);

    proxy.inject("/_apis/token", { kind: "status", status: 500 });
    proxy.clearFaults();
    expect((await fetch(tokenUrl, auth())).status).toBe(200);
  });

  it("answers 502 when the upstream is down or not yet known", async () => {
    const down = await startFaultProxy(`http://127.0.0.1:${await closedPort()}`);
    let upstream: string | undefined;
    const lazy = await startFaultProxy(() => upstream ?? "");
    try {
      const res = await fetch(`${down.url}/anything`);
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ error: "bad_gateway", message: expect.stringContaining("ECONNREFUSED") });

      expect((await fetch(`${lazy.url}/.well-known/jwks`)).status).toBe(502);
      upstream = ci.issuer;
      expect((await fetch(`${lazy.url}/.well-known/jwks`)).status).toBe(200);
    } finally {
      await down.close();
      await lazy.close();
    }
  });

  it("close() ends promptly while a request hangs (the client sees the socket close)", async () => {
    const local = await startFaultProxy(ci.issuer);
    local.outage("/", { kind: "hang" });
    const pending = fetch(`${local.url}/.well-known/jwks`).then(
      () => undefined,
      (err: unknown) => err,
    );
    while (local.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = Date.now();
    await local.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    const err = await pending;
    expect(err).toBeInstanceOf(TypeError);
    expect(shape(err)).toMatchObject({ message: "fetch failed", cause: { code: "UND_ERR_SOCKET", message: "other side closed" } });
  });
});

describe("fault proxy in front of the IdP, with openid-client", () => {
  let proxied: ProxiedIdp;
  let config: Configuration;

  beforeAll(async () => {
    proxied = await startProxiedIdp({ ciIssuer: ci.issuer, ciJwksUrl: ci.jwksUrl });
    config = await discovery(new URL(proxied.idp.issuer), "opencode-ci", undefined, None(), {
      execute: [allowInsecureRequests],
      timeout: 5,
    });
  });

  afterEach(() => {
    proxied.proxy.clearFaults();
    config.timeout = 5;
  });

  afterAll(async () => {
    await proxied?.close();
  });

  const grant = async (): Promise<unknown> =>
    genericGrantRequest(config, JWT_BEARER, { assertion: await ci.mint({ aud: proxied.idp.issuer }) });

  it("discovers through the proxy: issuer and every endpoint are the proxy URL", async () => {
    const { idp, proxy } = proxied;
    expect(idp.issuer).toBe(proxy.url);
    expect(idp.serverUrl).not.toBe(proxy.url);
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(proxy.url);
    expect(meta.token_endpoint).toBe(`${proxy.url}/token`);
    expect(meta.jwks_uri?.startsWith(`${proxy.url}/`)).toBe(true);
    expect(proxy.requests[0]).toMatchObject({ method: "GET", path: "/.well-known/openid-configuration" });
  });

  it("passes a jwt-bearer grant through; the expected audience defaults to the issuer (the proxy URL)", async () => {
    const tokens = (await grant()) as { access_token: string; token_type: string };
    expect(tokens.token_type).toBe("bearer");
    expect(await proxied.idp.isValidAccessToken(tokens.access_token)).toBe(true);
    expect(proxied.proxy.requests.at(-1)).toMatchObject({ method: "POST", path: "/token" });
    expect(proxied.proxy.requests.at(-1)).not.toHaveProperty("fault");

    const err = await rejectionOf(genericGrantRequest(config, JWT_BEARER, { assertion: await ci.mint({ aud: proxied.idp.serverUrl }) }));
    expect(shape(err)).toMatchObject({ class: "ResponseBodyError", error: "invalid_grant", status: 400 });
    expect((err as ResponseBodyError).error_description).toBe("assertion audience mismatch");
  });

  it("503 then success: the 503 is a ClientError whose cause is the unread Response", async () => {
    proxied.proxy.inject("/token", {
      kind: "status",
      status: 503,
      body: { error: "temporarily_unavailable", error_description: "try later" },
    });
    const err = await rejectionOf(grant());
    expect(err).toBeInstanceOf(ClientError);
    const cause = err.cause as Response;
    expect(cause.bodyUsed).toBe(false);
    expect(await cause.json()).toEqual({ error: "temporarily_unavailable", error_description: "try later" });
    await expect(grant()).resolves.toMatchObject({ token_type: "bearer" });
    expect(proxied.proxy.requests.slice(-2).map((r) => r.fault)).toEqual(["status", undefined]);
  });

  it("429 with an OAuth error body: a ResponseBodyError whose response carries Retry-After", async () => {
    proxied.proxy.inject("/token", { kind: "status", status: 429, body: { error: "slow_down" }, headers: { "retry-after": "2" } });
    const err = await rejectionOf(grant());
    expect(err).toBeInstanceOf(ResponseBodyError);
    expect((err as ResponseBodyError).response.headers.get("retry-after")).toBe("2");
  });

  it("redirect on the token endpoint is not followed", async () => {
    proxied.proxy.inject("/token", { kind: "redirect", location: "/token-moved", status: 307 });
    const err = await rejectionOf(grant());
    expect(shape(err)).toMatchObject({ class: "ClientError", code: "OAUTH_RESPONSE_IS_NOT_CONFORM", cause: { response: 307 } });
    expect(proxied.proxy.requests.some((r) => r.path.startsWith("/token-moved"))).toBe(false);
  });

  const ERR = (code: string, message: string, cause?: unknown): unknown => ({
    class: "ClientError",
    name: "ClientError",
    code,
    message,
    ...(cause === undefined ? {} : { cause }),
  });
  const OPE = (code: string, message: string, cause?: unknown): unknown => ({
    class: "OperationProcessingError",
    code,
    message,
    ...(cause === undefined ? {} : { cause }),
  });
  const TIMEOUT = { class: "DOMException", name: "TimeoutError", message: "The operation was aborted due to timeout" };
  const field = (patch: Record<string, unknown>): Fault => ({
    kind: "rewrite",
    transform: (upstream) => ({ body: JSON.stringify({ ...(JSON.parse(upstream.body) as object), ...patch }) }),
  });

  /** How openid-client 6.8 / oauth4webapi 3.8 report each fault at the token endpoint (genericGrantRequest). */
  const table: Array<{ name: string; fault: Fault; timeout?: number; expected: unknown }> = [
    {
      name: "503 with an OAuth JSON error body (5xx bodies are never parsed)",
      fault: { kind: "status", status: 503, body: { error: "temporarily_unavailable" } },
      expected: ERR("OAUTH_RESPONSE_IS_NOT_CONFORM", "unexpected HTTP response status code", { response: 503 }),
    },
    {
      name: "503 with an HTML page",
      fault: { kind: "status", status: 503, body: "<html>Service Unavailable</html>", headers: { "content-type": "text/html" } },
      expected: ERR("OAUTH_RESPONSE_IS_NOT_CONFORM", "unexpected HTTP response status code", { response: 503 }),
    },
    {
      name: "429 with an OAuth JSON error body",
      fault: { kind: "status", status: 429, body: { error: "slow_down" }, headers: { "retry-after": "2" } },
      expected: {
        class: "ResponseBodyError",
        code: "OAUTH_RESPONSE_BODY_ERROR",
        message: "server responded with an error in the response body",
        error: "slow_down",
        status: 429,
        cause: { error: "slow_down" },
      },
    },
    {
      name: "429 with an empty body (4xx must be JSON)",
      fault: { kind: "status", status: 429, headers: { "retry-after": "2" } },
      expected: ERR("OAUTH_RESPONSE_IS_NOT_JSON", "unexpected response content-type", { response: 429 }),
    },
    {
      name: "reset (not wrapped)",
      fault: { kind: "reset" },
      expected: { class: "TypeError", message: "fetch failed", cause: { class: "Error", code: "ECONNRESET", message: "read ECONNRESET" } },
    },
    {
      name: "hang past config.timeout",
      fault: { kind: "hang" },
      timeout: 0.2,
      expected: ERR("OAUTH_TIMEOUT", "operation timed out", TIMEOUT),
    },
    {
      name: "slow body past config.timeout (a parse error, not OAUTH_TIMEOUT)",
      fault: { kind: "slow-body", ms: 2_000 },
      timeout: 0.2,
      expected: ERR(
        "OAUTH_PARSE_ERROR",
        "parsing error occured",
        OPE("OAUTH_PARSE_ERROR", 'failed to parse "response" body as JSON', TIMEOUT),
      ),
    },
    {
      name: "redirect (302, not followed)",
      fault: { kind: "redirect", location: "/elsewhere" },
      expected: ERR("OAUTH_RESPONSE_IS_NOT_CONFORM", "unexpected HTTP response status code", { response: 302 }),
    },
    {
      name: "non-JSON 200 labelled application/json",
      fault: { kind: "rewrite", transform: () => ({ body: "<html>hello</html>" }) },
      expected: ERR(
        "OAUTH_PARSE_ERROR",
        "parsing error occured",
        OPE("OAUTH_PARSE_ERROR", 'failed to parse "response" body as JSON', {
          class: "SyntaxError",
          message: expect.stringContaining("is not valid JSON"),
        }),
      ),
    },
    {
      name: "non-JSON 200 labelled text/html",
      fault: { kind: "rewrite", transform: () => ({ headers: { "content-type": "text/html" }, body: "<html>hello</html>" }) },
      expected: ERR("OAUTH_RESPONSE_IS_NOT_JSON", "unexpected response content-type", { response: 200 }),
    },
    {
      name: "missing access_token",
      fault: field({ access_token: undefined }),
      expected: ERR(
        "OAUTH_INVALID_RESPONSE",
        "invalid response encountered",
        OPE("OAUTH_INVALID_RESPONSE", '"response" body "access_token" property must be a string', { body: { token_type: "Bearer" } }),
      ),
    },
    {
      name: "token_type 'mac'",
      fault: field({ token_type: "mac" }),
      expected: ERR("OAUTH_UNSUPPORTED_OPERATION", "unsupported operation", {
        class: "UnsupportedOperationError",
        code: "OAUTH_UNSUPPORTED_OPERATION",
        message: "unsupported `token_type` value",
        cause: { body: { token_type: "mac", access_token: "<redacted>" } },
      }),
    },
    {
      name: "expires_in -5",
      fault: field({ expires_in: -5 }),
      expected: ERR(
        "OAUTH_INVALID_RESPONSE",
        "invalid response encountered",
        OPE("OAUTH_INVALID_RESPONSE", '"response" body "expires_in" property must be a non-negative number', { body: { expires_in: -5 } }),
      ),
    },
    {
      name: 'expires_in "abc"',
      fault: field({ expires_in: "abc" }),
      expected: ERR(
        "OAUTH_INVALID_RESPONSE",
        "invalid response encountered",
        OPE("OAUTH_INVALID_RESPONSE", '"response" body "expires_in" property must be a number', { body: { expires_in: "abc" } }),
      ),
    },
  ];

  it.each(table)("reports $name precisely", async ({ fault, timeout, expected }) => {
    proxied.proxy.inject("/token", fault);
    if (timeout !== undefined) config.timeout = timeout;
    const err = await rejectionOf(grant());
    expect(shape(err)).toMatchObject(expected as object);
    expect(proxied.proxy.requests.at(-1)).toMatchObject({ path: "/token", fault: fault.kind });
  });

  it('accepts what it can coerce: expires_in "600", "60abc", 0 and 1.5; token_type "BEARER"', async () => {
    const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ expires_in: "600" }, { expires_in: 600 }],
      [{ expires_in: "60abc" }, { expires_in: 60 }],
      [{ expires_in: 0 }, { expires_in: 0 }],
      [{ expires_in: 1.5 }, { expires_in: 1.5 }],
      [{ token_type: "BEARER" }, { token_type: "bearer" }],
    ];
    for (const [patch, expected] of cases) {
      proxied.proxy.inject("/token", field(patch));
      expect(await grant()).toMatchObject(expected);
    }
  });

  it("a rewritten discovery issuer is refused", async () => {
    proxied.proxy.inject("/.well-known/openid-configuration", field({ issuer: "http://127.0.0.1:1" }));
    const err = await rejectionOf(
      discovery(new URL(proxied.idp.issuer), "opencode-ci", undefined, None(), { execute: [allowInsecureRequests], timeout: 5 }),
    );
    expect(shape(err)).toMatchObject(
      ERR("OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED", "discovered metadata issuer does not match the expected issuer") as object,
    );
  });
});
