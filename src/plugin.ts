/**
 * Wires the plugin: a logger, the registry of managed providers, the hooks that authenticate their requests, and
 * the hooks that keep the job's credentials away from the agent (src/agent/).
 * Plugin options (the `["opencode-ci-auth", { … }]` tuple form) accept `logLevel` and `logFormat`.
 */
import type { Plugin } from "@opencode-ai/plugin";
import { AgentSecrets, EVERY_PLATFORM_CREDENTIAL_ENV } from "./agent/agent-secrets.js";
import { createShellEnvHook } from "./agent/shell-env.js";
import { createMessagesTransformHook, createToolOutputHook } from "./agent/tool-output.js";
import { createLogger, resolveLogFormat, resolveLogLevel } from "./log.js";
import { createChatHeadersHook } from "./hooks/chat-headers.js";
import { createConfigHook } from "./hooks/config.js";
import { ProviderRegistry } from "./hooks/registry.js";

export const OpencodeCiAuth: Plugin = async (_input, options) => {
  const logger = createLogger({ level: resolveLogLevel(options?.logLevel), format: resolveLogFormat(options?.logFormat) });
  const registry = new ProviderRegistry();
  const agentSecrets = new AgentSecrets(process.env, EVERY_PLATFORM_CREDENTIAL_ENV);
  return {
    config: createConfigHook(registry, { logger, agentSecrets }),
    "chat.headers": createChatHeadersHook(registry),
    "shell.env": createShellEnvHook(agentSecrets, logger),
    "tool.execute.after": createToolOutputHook(agentSecrets),
    "experimental.chat.messages.transform": createMessagesTransformHook(agentSecrets),
  };
};
