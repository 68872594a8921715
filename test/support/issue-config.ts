/**
 * The config from the plugin-core issue, exactly as users write it, with the example hosts replaced by the
 * loopback world. One definition shared by the e2e tests, `npm run demo` and `npm run bench`.
 */
import type { World } from "./world.js";

export const PROVIDER_ID = "miaou";

/** The `provider.miaou.options.oauth2` block; `overrides` replace fields (undefined removes one). */
export function issueOAuth2Block(world: World, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuer: world.idp.issuer,
    clientId: "opencode-ci",
    scopes: ["openid"],
    authFlow: "jwt_bearer",
    subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
    ...overrides,
  };
}

/** The whole opencode.json. */
export function issueConfig(world: World, overrides: Record<string, unknown> = {}) {
  return {
    $schema: "https://opencode.ai/config.json",
    plugin: ["opencode-ci-auth"],
    provider: {
      [PROVIDER_ID]: {
        name: "Miaou",
        options: { baseURL: world.model.baseURL, oauth2: issueOAuth2Block(world, overrides) } as Record<string, unknown>,
      } as { name: string; options: Record<string, unknown>; models?: Record<string, unknown> },
    },
  };
}

/** What GitHub gives a job with `permissions: id-token: write`, pointing at the fake token service. */
export function githubActionsEnv(world: World): NodeJS.ProcessEnv {
  return { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken };
}
