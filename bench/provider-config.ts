/**
 * The one provider every measurement uses: "miaou", an OpenAI-compatible model server behind the loopback IdP,
 * authenticated with GitHub Actions' OIDC token through RFC 7523 jwt_bearer.
 */
import type { Config } from "@opencode-ai/plugin";
import { PROVIDER_ID, githubActionsEnv, issueConfig, issueOAuth2Block } from "../test/support/issue-config.js";
import type { World } from "../test/support/world.js";
import type { LibModule } from "./built-package.js";

export { PROVIDER_ID };

/** An opencode config as opencode hands it to the `config` hook. */
export function opencodeConfig(world: World): Config {
  return issueConfig(world) as unknown as Config;
}

/** The validated block, for library callers (createTokenProvider). */
export function parsedOAuth2Config(lib: LibModule, world: World) {
  const parsed = lib.parseOAuth2Block(PROVIDER_ID, issueOAuth2Block(world));
  if (!parsed.ok) throw new Error(`bench provider config is invalid: ${parsed.error.message}`);
  return parsed.config;
}

/** What GitHub puts in a job with `permissions: id-token: write`, pointing at the fake token service. */
export function useGitHubActionsEnv(world: World): void {
  Object.assign(process.env, githubActionsEnv(world));
}
