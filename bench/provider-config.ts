/**
 * The one provider every measurement uses: "miaou", an OpenAI-compatible model server behind the loopback IdP,
 * authenticated with GitHub Actions' OIDC token through RFC 7523 jwt_bearer.
 */
import type { Config } from "@opencode-ai/plugin";
import type { World } from "../test/support/world.js";
import type { LibModule } from "./built-package.js";

export const PROVIDER_ID = "miaou";

/** The `options.oauth2` block, as a user writes it. */
export function oauth2Block(world: World) {
  return {
    issuer: world.idp.issuer,
    clientId: "opencode-ci",
    scopes: ["openid"],
    authFlow: "jwt_bearer",
    subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
  };
}

/** An opencode config as opencode hands it to the `config` hook. */
export function opencodeConfig(world: World): Config {
  return {
    provider: {
      [PROVIDER_ID]: { name: "Miaou", options: { baseURL: world.model.baseURL, oauth2: oauth2Block(world) } },
    },
  } as Config;
}

/** The validated block, for library callers (createTokenProvider). */
export function parsedOAuth2Config(lib: LibModule, world: World) {
  const parsed = lib.parseOAuth2Block(PROVIDER_ID, oauth2Block(world));
  if (!parsed.ok) throw new Error(`bench provider config is invalid: ${parsed.error.message}`);
  return parsed.config;
}

/** What GitHub puts in a job with `permissions: id-token: write`, pointing at the fake token service. */
export function useGitHubActionsEnv(world: World): void {
  process.env.ACTIONS_ID_TOKEN_REQUEST_URL = world.ci.requestUrl;
  process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = world.ci.requestToken;
}
