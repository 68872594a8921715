/**
 * Wires the plugin: a logger, the registry of managed providers, and the two hooks that use it.
 * Plugin options (the `["opencode-ci-auth", { … }]` tuple form) accept `logLevel` and `logFormat`.
 */
import type { Plugin } from "@opencode-ai/plugin";
import { createLogger, resolveLogFormat, resolveLogLevel } from "./log.js";
import { createChatHeadersHook } from "./hooks/chat-headers.js";
import { createConfigHook } from "./hooks/config.js";
import { ProviderRegistry } from "./hooks/registry.js";

export const OpencodeCiAuth: Plugin = async (_input, options) => {
  const logger = createLogger({ level: resolveLogLevel(options?.logLevel), format: resolveLogFormat(options?.logFormat) });
  const registry = new ProviderRegistry();
  return {
    config: createConfigHook(registry, { logger }),
    "chat.headers": createChatHeadersHook(registry),
  };
};
