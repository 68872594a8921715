/**
 * The `config` hook: runs once, before opencode builds providers. For each provider with `options.oauth2` it
 * validates the block, installs the authorized fetch, sets a placeholder apiKey (the AI SDK packages refuse to
 * start without one), and discovers models when the config lists none.
 */
import type { Config } from "@opencode-ai/plugin";
import { parseProviders } from "../config/parse.js";
import type { AgentSecrets } from "../agent/agent-secrets.js";
import type { Logger } from "../log.js";
import type { TokenProviderOptions } from "../token-provider.js";
import { sharedTokenProvider } from "../token-provider-pool.js";
import { discoverModels, requestedModelIds } from "./model-discovery.js";
import { createProviderFetch } from "./provider-fetch.js";
import type { ManagedProvider, ProviderRegistry } from "./registry.js";

/** Not a secret: the AI SDK only needs a non-empty apiKey; the real credential is the Authorization header. */
export const PLACEHOLDER_API_KEY = "opencode-ci-auth-managed";

type ProviderEntry = NonNullable<Config["provider"]>[string] & { options?: Record<string, unknown>; models?: Record<string, unknown> };

export interface ConfigHookOptions extends Omit<TokenProviderOptions, "logger" | "source" | "witness"> {
  logger: Logger;
  /** What the agent must not see: each managed provider is registered there, and reports its tokens to it. */
  agentSecrets?: AgentSecrets;
  /** The fetch the provider requests go through (tests inject one); defaults to globalThis.fetch. */
  providerFetch?: typeof globalThis.fetch;
  /** The command line, to find `--model`; defaults to process.argv. */
  argv?: readonly string[];
}

export function createConfigHook(registry: ProviderRegistry, options: ConfigHookOptions) {
  const { logger } = options;

  async function discoverWithToken(providerId: string, baseURL: unknown, authorizedFetch: typeof globalThis.fetch): Promise<string[]> {
    if (typeof baseURL !== "string" || baseURL.length === 0) {
      logger.error(
        { event: "model_discovery_skipped", provider: providerId },
        "the provider lists no models and has no options.baseURL to discover them from",
      );
      return [];
    }
    return discoverModels(providerId, baseURL, authorizedFetch, logger);
  }

  return async (config: Config): Promise<void> => {
    const parsed = parseProviders(config as { provider?: Record<string, ProviderEntry> }, options.env);
    await Promise.all(
      parsed.map(async (result) => {
        const entry = (config.provider as Record<string, ProviderEntry>)[result.providerId] as ProviderEntry;
        const entryOptions = (entry.options ??= {});
        let managed: ManagedProvider;
        if (result.ok) {
          const { agentSecrets, ...tokenOptions } = options;
          // Shared with the other plugin instances of this process: one grant per token lifetime per process.
          const tokenProvider = sharedTokenProvider(result.providerId, result.config, {
            ...tokenOptions,
            logger,
            ...(agentSecrets ? { witness: agentSecrets } : {}),
          });
          agentSecrets?.addProvider(result.config, tokenProvider.source);
          managed = { providerId: result.providerId, tokenProvider };
        } else {
          // Not silently ignored: logged now, and every request of this provider fails with the same message.
          logger.error({ event: "config_invalid", provider: result.providerId, issues: result.error.issues }, result.error.reason);
          managed = { providerId: result.providerId, error: result.error };
        }
        registry.set(managed);
        const authorizedFetch = createProviderFetch(managed, logger, options.providerFetch);
        entryOptions.fetch = authorizedFetch;
        entryOptions.apiKey ??= PLACEHOLDER_API_KEY;

        if (entry.models && Object.keys(entry.models).length > 0) return;
        const ids = managed.error ? [] : await discoverWithToken(result.providerId, entryOptions.baseURL, authorizedFetch);
        // Without discovered models opencode would stop at "model not found" before our hooks run;
        // registering the requested model lets the request reach them and fail with the real cause.
        const fill = ids.length > 0 ? ids : requestedModelIds(result.providerId, config, options.argv);
        if (fill.length === 0) return;
        const models = (entry.models ??= {});
        for (const id of fill) models[id] ??= { name: id };
      }),
    );
  };
}
