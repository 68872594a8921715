/**
 * src/hooks/chat-headers.ts against the real world: providers are registered by the real config hook, so the
 * header the hook sets is the token the IdP issued and the model server accepts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import type { Config } from "@opencode-ai/plugin";

import { createChatHeadersHook } from "../../src/hooks/chat-headers.js";
import { PLACEHOLDER_API_KEY, createConfigHook } from "../../src/hooks/config.js";
import { OPENCODE_ERROR_NAME, looksRetryable } from "../../src/hooks/opencode-error.js";
import { ProviderRegistry } from "../../src/hooks/registry.js";
import { captureLogger, expectNoLeak, fp, recordingFetch, rejectionOf } from "../support/harness.js";
import { IDP_CLIENTS } from "../support/idp.js";
import { startWorld } from "../support/world.js";
import type { World } from "../support/world.js";

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

type Entry = { name?: string; models?: Record<string, unknown>; options?: Record<string, unknown> };

/**
 * Registers three providers through the config hook: `miaou` (managed, models listed so the hook itself fetches
 * no token), `broken` (an invalid oauth2 block) and `other` (not ours).
 */
async function setup(
  env: NodeJS.ProcessEnv = { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken },
) {
  const registry = new ProviderRegistry();
  const log = captureLogger("trace");
  const auth = recordingFetch();
  const provider: Record<string, Entry> = {
    miaou: {
      models: { "mock-model": { name: "Mock" } },
      options: {
        baseURL: world.model.baseURL,
        oauth2: {
          issuer: world.idp.issuer,
          clientId: IDP_CLIENTS.none,
          subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
        },
      },
    },
    broken: {
      models: { m: {} },
      options: { baseURL: world.model.baseURL, oauth2: { issuer: world.idp.issuer, subjectTokenSource: { type: "github_actions" } } },
    },
    other: { options: { baseURL: "https://other.example/v1", apiKey: "sk-other" } },
  };
  // Retries are real but instant here (retry.test.ts covers the backoff itself).
  await createConfigHook(registry, { logger: log.logger, env, fetch: auth.fetch, argv: [], retry: { sleep: async () => {} } })({
    provider,
  } as unknown as Config);
  const hook = createChatHeadersHook(registry);
  const call = async (providerID: string, headers: Record<string, string> = {}) => {
    const output = { headers };
    await hook({ model: { providerID } }, output);
    return output.headers;
  };
  return { registry, log, authCalls: auth.calls, provider, call };
}

describe("chat.headers", () => {
  it("sets Authorization: Bearer <IdP-issued token> for a managed provider, keeping other headers", async () => {
    const s = await setup();
    const grants = world.idp.grants.length;
    const headers = await s.call("miaou", { "x-session": "s-1", "User-Agent": "opencode" });
    expect(world.idp.grants.length - grants).toBe(1);
    const token = s.registry.get("miaou")?.tokenProvider?.peek()?.value ?? "";
    expect(world.idp.issuedTokens.has(token)).toBe(true);
    expect({ ...headers, Authorization: fp(headers["Authorization"]) }).toEqual({
      "x-session": "s-1",
      "User-Agent": "opencode",
      Authorization: fp(`Bearer ${token}`),
    });
    // The model server accepts exactly that header.
    const res = await fetch(`${world.model.baseURL}/models`, { headers: { authorization: headers["Authorization"] ?? "" } });
    expect(res.status).toBe(200);
    expectNoLeak(
      [s.log.text()],
      [...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    );
  });

  it("overwrites an Authorization already present (the SDK placeholder)", async () => {
    const s = await setup();
    const headers = await s.call("miaou", { Authorization: `Bearer ${PLACEHOLDER_API_KEY}` });
    const token = s.registry.get("miaou")?.tokenProvider?.peek()?.value ?? "";
    expect(fp(headers["Authorization"])).toBe(fp(`Bearer ${token}`));
  });

  it("later calls use the cached token: no grant, same header; the installed fetch shares it", async () => {
    const s = await setup();
    const first = await s.call("miaou");
    const grants = world.idp.grants.length;
    const ci = world.ci.requests.length;
    for (let i = 0; i < 5; i++) expect(fp((await s.call("miaou"))["Authorization"])).toBe(fp(first["Authorization"]));
    const providerFetch = s.provider["miaou"]?.options?.["fetch"] as typeof globalThis.fetch;
    const requests = world.model.requests.length;
    expect((await providerFetch(`${world.model.baseURL}/models`)).status).toBe(200);
    expect(fp(world.model.requests[requests]?.authorization)).toBe(fp(first["Authorization"]));
    expect(world.idp.grants.length).toBe(grants);
    expect(world.ci.requests.length).toBe(ci);
  });

  it("leaves a provider it does not manage untouched, without any request", async () => {
    const s = await setup();
    const grants = world.idp.grants.length;
    const calls = s.authCalls.length;
    const original = { Authorization: "Bearer sk-other", "x-a": "b" };
    const headers = await s.call("other", { ...original });
    expect(headers).toEqual(original);
    const unknown = await s.call("not-configured-at-all", { ...original });
    expect(unknown).toEqual(original);
    expect(world.idp.grants.length).toBe(grants);
    expect(s.authCalls.length).toBe(calls);
  });

  it("a provider with an invalid block rejects with its config error, headers untouched, no request", async () => {
    const s = await setup();
    const calls = s.authCalls.length;
    const headers: Record<string, string> = { "x-a": "b" };
    const err = await rejectionOf(s.call("broken", headers));
    expect(err.name).toBe(OPENCODE_ERROR_NAME);
    expect(err.message.replaceAll("\u2060", "")).toBe(s.registry.get("broken")?.error?.message);
    expect(err.message).toContain('provider "broken"');
    expect(err.message).toContain("oauth2.clientId");
    expect(headers).toEqual({ "x-a": "b" });
    expect(s.authCalls.length).toBe(calls);
  });

  it("a token failure rejects with the plugin's message, made retry-safe for opencode", async () => {
    const s = await setup();
    // Four 503s: every attempt of the default policy fails, so the final error lists them.
    world.ci.failNextRequests(4, 503);
    const headers: Record<string, string> = {};
    const err = await rejectionOf(s.call("miaou", headers));
    expect(err.name).toBe(OPENCODE_ERROR_NAME);
    expect(err.message).toContain('provider "miaou"');
    expect(err.message.replaceAll("\u2060", "")).toMatch(
      /GitHub token service at http:\/\/127\.0\.0\.1:\d+ answered HTTP 503: .* Gave up after 4 attempts in [\d.]+s \(retry.maxAttempts is 4\): 1\) HTTP 503; 2\) HTTP 503; 3\) HTTP 503; 4\) HTTP 503\./,
    );
    // "503" would make opencode retry a final failure: the visible text stays, the pattern no longer matches.
    expect(looksRetryable(err.message)).toBe(false);
    expect(headers).toEqual({});
  });

  it("an IdP refusal rejects with the refusal, and the next call recovers once the cause is fixed", async () => {
    const s = await setup();
    world.ci.claims = { repository: "evil/fork" };
    const err = await rejectionOf(s.call("miaou"));
    expect(err.message).toContain("the IdP refused the jwt_bearer grant (invalid_grant: repository evil/fork is not allowed)");
    world.ci.claims = {};
    const headers = await s.call("miaou");
    expect(world.idp.issuedTokens.has((headers["Authorization"] ?? "").replace(/^Bearer /, ""))).toBe(true);
  });
});
