/**
 * src/hooks/config.ts on a config object shaped like opencode's, against the real world: the model server only
 * accepts access tokens the oidc-provider IdP issued, obtained with a GitHub-style CI token.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import type { Config } from "@opencode-ai/plugin";

import { createChatHeadersHook } from "../../src/hooks/chat-headers.js";
import { PLACEHOLDER_API_KEY, createConfigHook } from "../../src/hooks/config.js";
import { OPENCODE_ERROR_NAME } from "../../src/hooks/opencode-error.js";
import { ProviderRegistry } from "../../src/hooks/registry.js";
import { captureLogger, closedPort, expectNoLeak, fp, recordingFetch, rejectionOf } from "../support/harness.js";
import type { CapturedLog, RecordedCall } from "../support/harness.js";
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
  world.model.failNext401(0);
});

type Entry = { name?: string; models?: Record<string, unknown>; options?: Record<string, unknown> };
type OpencodeConfig = { model?: string; small_model?: string; provider: Record<string, Entry> };

function oauth2(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuer: world.idp.issuer,
    clientId: IDP_CLIENTS.none,
    scopes: "models.read",
    subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
    ...extra,
  };
}

/** What opencode hands the config hook: providers by id, each with `options` passed to the AI SDK package. */
function opencodeConfig(miaou: Partial<Entry> & { oauth2?: unknown; options?: Record<string, unknown> } = {}): OpencodeConfig {
  const { oauth2: block = oauth2(), options = {}, ...rest } = miaou;
  return {
    provider: {
      miaou: { name: "Miaou", ...rest, options: { baseURL: world.model.baseURL, oauth2: block, ...options } },
      other: { name: "Other", options: { baseURL: "https://other.example/v1", apiKey: "sk-other-user-key" } },
    },
  };
}

interface Run {
  registry: ProviderRegistry;
  log: CapturedLog;
  /** Requests to the CI service and the IdP (TokenProvider's fetch). */
  authCalls: RecordedCall[];
  /** Requests the installed provider fetch sent (model listing and provider requests). */
  providerCalls: RecordedCall[];
  hook: (config: Config) => Promise<void>;
}

function setup(options: { env?: NodeJS.ProcessEnv; argv?: string[] } = {}): Run {
  const registry = new ProviderRegistry();
  const log = captureLogger("trace");
  const auth = recordingFetch();
  const provider = recordingFetch();
  const env = options.env ?? { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken };
  const hook = createConfigHook(registry, {
    logger: log.logger,
    env,
    fetch: auth.fetch,
    providerFetch: provider.fetch,
    argv: options.argv ?? [],
  });
  return { registry, log, authCalls: auth.calls, providerCalls: provider.calls, hook };
}

const run = (r: Run, config: OpencodeConfig) => r.hook(config as unknown as Config);
const events = (log: CapturedLog, event: string) => log.lines.filter((l) => l["event"] === event);

function secrets() {
  return [
    ...world.ci.tokensIssued.map((value, i) => ({ label: `CI token #${i}`, value })),
    ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "request token", value: world.ci.requestToken },
    { label: "ci-post secret", value: world.idp.secrets.post },
  ];
}

describe("a managed provider", () => {
  it("gets the models listed by GET /models, a placeholder apiKey and the authorized fetch", async () => {
    const r = setup();
    const config = opencodeConfig();
    const grants = world.idp.grants.length;
    const modelRequests = world.model.requests.length;
    await run(r, config);

    const entry = config.provider["miaou"];
    expect(entry?.models).toEqual({ "mock-model": { name: "mock-model" } });
    expect(entry?.options?.["apiKey"]).toBe(PLACEHOLDER_API_KEY);
    expect(typeof entry?.options?.["fetch"]).toBe("function");
    expect(entry?.options?.["baseURL"]).toBe(world.model.baseURL);
    expect(entry?.options?.["oauth2"]).toEqual(oauth2()); // the block itself is left as written
    expect(r.registry.get("miaou")?.tokenProvider?.providerId).toBe("miaou");
    expect(r.registry.get("miaou")?.error).toBeUndefined();

    // The listing went through the installed fetch with an IdP-issued token, and the model server accepted it.
    expect(world.idp.grants.length - grants).toBe(1);
    const listing = world.model.requests.slice(modelRequests);
    expect(listing.map((q) => [q.method, q.path, q.status])).toEqual([["GET", "/v1/models", 200]]);
    const token = r.registry.get("miaou")?.tokenProvider?.peek()?.value ?? "";
    expect(world.idp.issuedTokens.has(token)).toBe(true);
    expect(fp(listing[0]?.authorization)).toBe(fp(`Bearer ${token}`));
    expect(r.providerCalls).toEqual([{ method: "GET", url: `${world.model.baseURL}/models` }]);
    expect(events(r.log, "models_discovered")).toMatchObject([{ provider: "miaou", count: 1 }]);
    expectNoLeak([r.log.text()], secrets());
  });

  it("the installed fetch serves provider requests with the same cached token", async () => {
    const r = setup();
    const config = opencodeConfig();
    await run(r, config);
    const grants = world.idp.grants.length;
    const fetch = config.provider["miaou"]?.options?.["fetch"] as typeof globalThis.fetch;
    const res = await fetch(`${world.model.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${PLACEHOLDER_API_KEY}` },
      body: JSON.stringify({ model: "mock-model", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content).toBe(
      "Hello from the mock model",
    );
    expect(world.idp.grants.length).toBe(grants);
  });

  it("keeps an apiKey the user set", async () => {
    const r = setup();
    const config = opencodeConfig({ options: { apiKey: "user-chosen-key" } });
    await run(r, config);
    expect(config.provider["miaou"]?.options?.["apiKey"]).toBe("user-chosen-key");
    expect(typeof config.provider["miaou"]?.options?.["fetch"]).toBe("function");
  });

  it("listed models are kept and no discovery request (nor grant) is made", async () => {
    const r = setup();
    const models = { "gpt-custom": { name: "Custom", limit: { context: 1000, output: 100 } } };
    const config = opencodeConfig({ models: structuredClone(models) });
    const grants = world.idp.grants.length;
    const modelRequests = world.model.requests.length;
    await run(r, config);
    expect(config.provider["miaou"]?.models).toEqual(models);
    expect(world.model.requests.length).toBe(modelRequests);
    expect(world.idp.grants.length).toBe(grants);
    expect(r.authCalls).toEqual([]);
    expect(config.provider["miaou"]?.options?.["apiKey"]).toBe(PLACEHOLDER_API_KEY);
  });

  it("takes the block as opencode substituted it: a value holding an {env:…} reference is not expanded again", async () => {
    // opencode substituted the file once; a value that came from the environment is literal text from here on.
    // Expanding it again would hand the secret named inside it to whoever wrote the value.
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
      MIAOU_SECRET: world.idp.secrets.post,
    };
    const r = setup({ env });
    const config = opencodeConfig({ oauth2: oauth2({ clientId: IDP_CLIENTS.post, clientSecret: "{env:MIAOU_SECRET}" }) });
    await run(r, config);
    // The IdP saw the literal text as the secret, and refused it: the real secret never left the environment.
    expect(world.idp.grants.at(-1)).toMatchObject({ clientId: IDP_CLIENTS.post, ok: false });
    expect(r.log.text()).toContain("invalid_client");
  });

  it("a confidential client with the secret opencode substituted gets its token", async () => {
    const env = { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken };
    const r = setup({ env });
    const config = opencodeConfig({ oauth2: oauth2({ clientId: IDP_CLIENTS.post, clientSecret: world.idp.secrets.post }) });
    await run(r, config);
    expect(world.idp.grants.at(-1)).toMatchObject({ clientId: IDP_CLIENTS.post, ok: true });
    expect(config.provider["miaou"]?.models).toEqual({ "mock-model": { name: "mock-model" } });
    expectNoLeak([r.log.text()], secrets());
  });
});

describe("a provider without oauth2", () => {
  it("is left exactly as it was, and not registered", async () => {
    const r = setup();
    const config = opencodeConfig();
    const before = structuredClone(config.provider["other"]);
    await run(r, config);
    expect(config.provider["other"]).toEqual(before);
    expect(r.registry.get("other")).toBeUndefined();
    expect(r.registry.get("miaou")).toBeDefined();
  });
});

describe("an invalid oauth2 block", () => {
  it("is logged naming provider and field; fetch and chat.headers reject with that message without any network", async () => {
    const r = setup();
    const config = opencodeConfig({
      oauth2: { issuer: world.idp.issuer, authFlow: "password", subjectTokenSource: { type: "github_actions" } },
    });
    const counts = () => [world.idp.grants.length, world.model.requests.length, world.ci.requests.length];
    const before = counts();
    await run(r, config);

    const managed = r.registry.get("miaou");
    expect(managed?.tokenProvider).toBeUndefined();
    const configError = managed?.error;
    expect(configError?.issues.map((i) => i.path).sort()).toEqual(["oauth2.authFlow", "oauth2.clientId"]);

    const logged = events(r.log, "config_invalid");
    expect(logged.length).toBe(1);
    expect(logged[0]).toMatchObject({ level: 50, provider: "miaou" });
    expect(String(logged[0]?.["msg"])).toContain("oauth2.clientId");
    expect(String(logged[0]?.["msg"])).toContain("oauth2.authFlow");
    expect(logged[0]?.["issues"]).toEqual(configError?.issues);

    const fetch = config.provider["miaou"]?.options?.["fetch"] as typeof globalThis.fetch;
    const fetchErr = await rejectionOf(fetch(`${world.model.baseURL}/models`));
    const headers: Record<string, string> = { "x-keep": "1" };
    const hookErr = await rejectionOf(createChatHeadersHook(r.registry)({ model: { providerID: "miaou" } }, { headers }));
    for (const err of [fetchErr, hookErr]) {
      expect(err.name).toBe(OPENCODE_ERROR_NAME);
      // Same text as the ConfigError (opencode-error may insert invisible word joiners to defeat retry patterns).
      expect(err.message.replaceAll("\u2060", "")).toBe(configError?.message);
      expect(err.message).toContain('provider "miaou"');
      expect(err.message).toContain("oauth2.clientId");
    }
    expect(headers).toEqual({ "x-keep": "1" });
    expect(counts()).toEqual(before);
    expect(r.authCalls).toEqual([]);
    expect(r.providerCalls).toEqual([]);
    expect(config.provider["miaou"]?.models).toBeUndefined();
  });
});

describe("a baseURL that would carry the token in clear text", () => {
  it("plain http off loopback is refused for that provider, naming options.baseURL, and nothing is sent", async () => {
    const r = setup();
    const config = opencodeConfig({ options: { baseURL: "http://models.example.test/v1" } });
    const before = [world.idp.grants.length, world.ci.requests.length];
    await run(r, config);

    const error = r.registry.get("miaou")?.error;
    expect(error?.issues).toEqual([{ path: "options.baseURL", message: expect.stringMatching(/is not https.*clear text/) }]);
    expect(events(r.log, "config_invalid")[0]).toMatchObject({ level: 50, provider: "miaou" });
    const fetch = config.provider["miaou"]?.options?.["fetch"] as typeof globalThis.fetch;
    const err = await rejectionOf(fetch("http://models.example.test/v1/chat/completions", { method: "POST", body: "{}" }));
    expect(err.message).toContain("options.baseURL");
    expect(r.providerCalls).toEqual([]);
    expect(r.authCalls).toEqual([]);
    expect([world.idp.grants.length, world.ci.requests.length]).toEqual(before);
  });

  it("is reported together with the block's own problems, and an unparseable baseURL is a problem too", async () => {
    const r = setup();
    await run(r, opencodeConfig({ oauth2: oauth2({ clientId: undefined }), options: { baseURL: "not a url" } }));
    const error = r.registry.get("miaou")?.error;
    expect(error?.issues.map((i) => i.path)).toEqual(["oauth2.clientId", "options.baseURL"]);
    expect(error?.message).toContain("invalid configuration (2 problems)");
    expect(error?.message).toContain("- options.baseURL: must be an absolute http(s) URL");
  });

  it("https and loopback http are accepted", async () => {
    for (const baseURL of ["https://models.example.test/v1", world.model.baseURL]) {
      const r = setup();
      await run(r, opencodeConfig({ options: { baseURL }, models: { m: { name: "m" } } }));
      expect(r.registry.get("miaou")?.error).toBeUndefined();
    }
  });
});

describe("model discovery failures are logged and the hook resolves", () => {
  it("the model server answers 401 twice: one refresh, one retry, then logged; no models", async () => {
    const r = setup();
    const config = opencodeConfig();
    const grants = world.idp.grants.length;
    const modelRequests = world.model.requests.length;
    world.model.failNext401(2);
    await expect(run(r, config)).resolves.toBeUndefined();
    expect(config.provider["miaou"]?.models).toBeUndefined();
    expect(world.idp.grants.length - grants).toBe(2);
    expect(world.model.requests.slice(modelRequests).map((q) => q.status)).toEqual([401, 401]);
    const failed = events(r.log, "model_discovery_failed");
    expect(failed).toMatchObject([{ level: 50, provider: "miaou", url: `${world.model.baseURL}/models` }]);
    expect(String(failed[0]?.["msg"])).toContain("see the plugin's error above");
    const refused = events(r.log, "provider_unauthorized_after_refresh");
    expect(refused.length).toBe(1);
    expect(String(refused[0]?.["msg"])).toContain("answered HTTP 401 to a freshly issued access token");
    expectNoLeak([r.log.text()], secrets());
  });

  it("a baseURL on a closed port: logged with the URL, the hook resolves, no models", async () => {
    const r = setup();
    const baseURL = `http://127.0.0.1:${await closedPort()}/v1`;
    const config = opencodeConfig({ options: { baseURL } });
    await expect(run(r, config)).resolves.toBeUndefined();
    expect(config.provider["miaou"]?.models).toBeUndefined();
    const failed = events(r.log, "model_discovery_failed");
    expect(failed).toMatchObject([{ level: 50, provider: "miaou", url: `${baseURL}/models` }]);
    expect(String(failed[0]?.["msg"])).toMatch(/did not succeed: TypeError/);
    // The token was obtained (the failure is the provider's, not ours).
    expect(r.registry.get("miaou")?.tokenProvider?.peek()).toBeDefined();
  });

  it("no access token (GitHub variables missing): logged once by the token provider, discovery says so, the hook resolves", async () => {
    const r = setup({ env: {} });
    const config = opencodeConfig();
    const grants = world.idp.grants.length;
    await expect(run(r, config)).resolves.toBeUndefined();
    expect(config.provider["miaou"]?.models).toBeUndefined();
    expect(world.idp.grants.length).toBe(grants);
    expect(events(r.log, "grant_failed")).toMatchObject([{ level: 50, code: "ERR_SUBJECT_TOKEN_UNAVAILABLE" }]);
    const failed = events(r.log, "model_discovery_failed");
    expect(String(failed[0]?.["msg"])).toMatch(/see the plugin's error above/);
    expect(r.providerCalls).toEqual([]);
  });

  it("no baseURL: the provider is refused, naming options.baseURL and the opt-in", async () => {
    const r = setup();
    const config = opencodeConfig();
    delete config.provider["miaou"]?.options?.["baseURL"];
    await run(r, config);
    expect(events(r.log, "config_invalid")).toMatchObject([{ level: 50, provider: "miaou" }]);
    expect(r.log.text()).toContain("options.baseURL: is required: the access token is sent to it.");
    expect(r.registry.get("miaou")?.error?.code).toBe("ERR_CONFIG_INVALID");
    expect(r.providerCalls).toEqual([]);
  });

  it("no baseURL with allowMissingBaseURL: managed, and discovery is skipped and logged", async () => {
    const r = setup();
    const config = opencodeConfig({ oauth2: oauth2({ allowMissingBaseURL: true }) });
    delete config.provider["miaou"]?.options?.["baseURL"];
    await run(r, config);
    expect(r.registry.get("miaou")?.tokenProvider).toBeDefined();
    expect(events(r.log, "model_discovery_skipped")).toMatchObject([{ level: 50, provider: "miaou" }]);
    expect(config.provider["miaou"]?.models).toBeUndefined();
    expect(r.providerCalls).toEqual([]);
  });

  it("when discovery fails, the models the user asked for (--model, model, small_model) are registered", async () => {
    const r = setup({ env: {}, argv: ["node", "opencode", "run", "--model", "miaou/big-one", "-m", "other/not-ours"] });
    const config = { ...opencodeConfig(), model: "miaou/default-one", small_model: "other/small" };
    await run(r, config);
    expect(config.provider["miaou"]?.models).toEqual({ "default-one": { name: "default-one" }, "big-one": { name: "big-one" } });
    expect(config.provider["other"]?.models).toBeUndefined();
  });
});
