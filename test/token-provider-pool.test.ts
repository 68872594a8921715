/**
 * One grant per token lifetime per process, however many plugin instances opencode makes (one per directory
 * instance: a run whose PWD differs from its cwd makes two). Two real plugin instances, one process, the loopback
 * world: the IdP counts the grants.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { OpencodeCiAuth } from "../src/plugin.js";
import { oauth2Schema } from "../src/config/schema.js";
import { sharedTokenProvider } from "../src/token-provider-pool.js";
import { captureLogger } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld, type World } from "./support/world.js";

let world: World;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  world = await startWorld();
  // The plugin reads the job's environment from process.env, as in opencode: this file runs in its own process.
  for (const [k, v] of Object.entries({
    ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
    OPENCODE_CI_AUTH_LOG_LEVEL: "silent",
  })) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await world?.close();
});

type Hooks = Awaited<ReturnType<typeof OpencodeCiAuth>>;

function opencodeConfig(scope = "models.read") {
  return {
    provider: {
      miaou: {
        models: { m: { name: "m" } },
        options: {
          baseURL: world.model.baseURL,
          oauth2: {
            issuer: world.idp.issuer,
            clientId: IDP_CLIENTS.none,
            scopes: [scope],
            subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
          },
        },
      },
    },
  };
}

async function instance(): Promise<Hooks> {
  return OpencodeCiAuth({} as never, undefined as never);
}

async function authorization(hooks: Hooks): Promise<string | undefined> {
  const output = { headers: {} as Record<string, string> };
  await hooks["chat.headers"]?.({ model: { providerID: "miaou" } } as never, output);
  return output.headers.Authorization;
}

describe("two plugin instances in one process", () => {
  it("share one token provider: one grant for both, the same token on both", async () => {
    const first = await instance();
    const second = await instance();
    await first.config?.(opencodeConfig() as never);
    await second.config?.(opencodeConfig() as never);
    const grants = world.idp.grants.length;
    const [a, b, c] = await Promise.all([authorization(first), authorization(second), authorization(second)]);
    expect(world.idp.grants.length - grants).toBe(1);
    expect(a).toBeDefined();
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it("a provider whose block differs is another identity: its own grant", async () => {
    const first = await instance();
    const second = await instance();
    // Blocks no other test here uses, so no token is cached for them yet.
    await first.config?.(opencodeConfig("openid") as never);
    await second.config?.(opencodeConfig("openid models.read") as never);
    const grants = world.idp.grants.length;
    const [a, b] = await Promise.all([authorization(first), authorization(second)]);
    expect(world.idp.grants.length - grants).toBe(2);
    expect(a).not.toBe(b);
  });

  it("each instance's tool output learns the shared token, even when the other instance got it", async () => {
    const first = await instance();
    const second = await instance();
    await first.config?.(opencodeConfig("models.read openid") as never);
    const header = await authorization(first);
    await second.config?.(opencodeConfig("models.read openid") as never);
    const token = header?.replace(/^Bearer /, "") ?? "";
    expect(token.length).toBeGreaterThan(10);
    const output = { title: "cat", output: `token: ${token}`, metadata: {} };
    await second["tool.execute.after"]?.({ tool: "bash", sessionID: "s", callID: "c", args: {} }, output);
    expect(output.output).toBe("token: [redacted by opencode-ci-auth]");
  });
});

describe("sharedTokenProvider", () => {
  it("is scoped by the environment, fetch and clock it works with: an injected one gets its own provider", () => {
    const config = oauth2Schema.parse(opencodeConfig().provider.miaou.options.oauth2);
    const logger = captureLogger("silent").logger;
    const env = {};
    const one = sharedTokenProvider("miaou", config, { env, logger });
    expect(sharedTokenProvider("miaou", config, { env, logger })).toBe(one);
    expect(sharedTokenProvider("miaou", config, { env: {}, logger })).not.toBe(one);
    expect(sharedTokenProvider("miaou", config, { env, logger, now: () => 0 })).not.toBe(one);
    expect(sharedTokenProvider("other", config, { env, logger })).not.toBe(one);
  });
});
