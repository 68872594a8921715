/**
 * The job's allow-lists (src/config/allow-lists.ts) through the whole chain, against the real oidc-provider IdP and
 * the fake GitHub token service: a destination outside a list is refused before anything is sent to it, and a
 * config inside every list works as before. The field-by-field rules are in test/config/parse.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { oauth2Schema } from "../src/config/schema.js";
import { createChatHeadersHook } from "../src/hooks/chat-headers.js";
import { createConfigHook } from "../src/hooks/config.js";
import { ProviderRegistry } from "../src/hooks/registry.js";
import { TokenProvider } from "../src/token-provider.js";
import { captureLogger, rejectionOf } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld, type World } from "./support/world.js";

let world: World;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const githubEnv = () => ({ ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken });

function provider(env: NodeJS.ProcessEnv, { audience = world.idp.issuer as string | null } = {}): TokenProvider {
  const config = oauth2Schema.parse({
    issuer: world.idp.issuer,
    clientId: IDP_CLIENTS.none,
    subjectTokenSource: { type: "github_actions", ...(audience === null ? {} : { audience }) },
  });
  return new TokenProvider("miaou", config, { env, logger: captureLogger("silent").logger, retry: { sleep: async () => undefined } });
}

describe("checked once the value is known, still before anything is sent", () => {
  it("a discovered token endpoint outside OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: no grant", async () => {
    const grants = world.idp.grants.length;
    const tokens = provider({ ...githubEnv(), OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: "https://auth.example.com/token" });
    const err = await rejectionOf(tokens.getToken());
    expect(err.message).toBe(
      `opencode-ci-auth: provider "miaou": discovery at ${new URL(world.idp.issuer).href}: the discovered token endpoint "${world.idp.issuer}/token" is not in OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS (https://auth.example.com/token), which this job sets: use one of those, or add it to OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS in the job's environment (the config file cannot allow it).`,
    );
    expect(world.idp.grants.length).toBe(grants);
  });

  it("the audience GitHub chose (no audience configured) outside OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: the token is not sent", async () => {
    const grants = world.idp.grants.length;
    const tokens = provider({ ...githubEnv(), OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: world.idp.issuer }, { audience: null });
    const err = await rejectionOf(tokens.getToken());
    expect(err.message).toBe(
      `opencode-ci-auth: provider "miaou": github_actions subject token: the token's audience "https://github.com/acme" is not in OPENCODE_CI_AUTH_ALLOWED_AUDIENCES (${world.idp.issuer}), which this job sets: request the token for one of those (subjectTokenSource.audience), or add it to OPENCODE_CI_AUTH_ALLOWED_AUDIENCES in the job's environment. Nothing was sent.`,
    );
    expect(world.idp.grants.length).toBe(grants);
  });

  it("inside every list, the chain works as without lists", async () => {
    const tokens = provider({
      ...githubEnv(),
      OPENCODE_CI_AUTH_ALLOWED_ISSUERS: world.idp.issuer,
      OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: `${world.idp.issuer}/token`,
      OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: world.idp.issuer,
    });
    const token = await tokens.getToken();
    expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
  });
});

describe("through the hooks", () => {
  it("an issuer outside the list: the provider is refused at config time, and no CI token is ever requested", async () => {
    const env = { ...githubEnv(), OPENCODE_CI_AUTH_ALLOWED_ISSUERS: "https://auth.example.com/realms/acme" };
    const registry = new ProviderRegistry();
    const log = captureLogger("info");
    const configHook = createConfigHook(registry, { logger: log.logger, env });
    const config = {
      provider: {
        miaou: {
          options: {
            baseURL: world.model.baseURL,
            oauth2: {
              issuer: world.idp.issuer,
              clientId: IDP_CLIENTS.none,
              subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
            },
          },
          models: { m: { name: "m" } },
        },
      },
    };
    const ciRequests = world.ci.requests.length;
    await configHook(config as never);
    const err = await rejectionOf(createChatHeadersHook(registry)({ model: { providerID: "miaou" } }, { headers: {} }));
    expect(err.message).toContain(
      `  - oauth2.issuer: the issuer "${world.idp.issuer}" is not in OPENCODE_CI_AUTH_ALLOWED_ISSUERS (https://auth.example.com/realms/acme), which this job sets`,
    );
    expect(world.ci.requests.length).toBe(ciRequests);
  });
});
