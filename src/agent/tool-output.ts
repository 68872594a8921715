/**
 * What the agent's tools produce, before the model sees it. Two hooks, one rule: known secrets are replaced
 * (redact-secrets.ts) in every string they hold.
 *
 * - `tool.execute.after` runs for every tool call before opencode stores the result and sends it to the model. The
 *   output object differs by tool: built-in tools return `{ title, output, metadata }` (bash also keeps the raw
 *   output in `metadata.output`, which exports and `--format json` show); MCP tools return `{ content: [...] }` with
 *   no `output`. So every string in the object is redacted, in place (opencode keeps its own reference).
 * - `experimental.chat.messages.transform` runs before every model request, over the whole conversation: it catches
 *   what no tool hook sees (the output of `!` shell commands and of `` !`cmd` `` in command templates, the text of a
 *   tool that failed). It is experimental in opencode 1.18; where it does not exist, the first hook still applies.
 *
 * This keeps a credential the agent found (in a file, in another process's environment) out of the model's
 * context; it cannot stop a command from sending it elsewhere itself.
 */
import type { AgentSecrets } from "./agent-secrets.js";

const MAX_DEPTH = 10;

/** Every string inside `value`, redacted in place; returns the (same) value, or the redacted string. */
export function redactDeep(value: unknown, secrets: AgentSecrets, depth = 0): unknown {
  if (typeof value === "string") return secrets.redact(value);
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    value.forEach((item, i) => (value[i] = redactDeep(item, secrets, depth + 1)));
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const before = record[key];
    const after = redactDeep(before, secrets, depth + 1);
    if (after !== before) record[key] = after;
  }
  return record;
}

export function createToolOutputHook(secrets: AgentSecrets) {
  return async (_input: unknown, output: object): Promise<void> => {
    redactDeep(output, secrets);
  };
}

export function createMessagesTransformHook(secrets: AgentSecrets) {
  return async (_input: unknown, output: { messages: unknown[] }): Promise<void> => {
    redactDeep(output.messages, secrets);
  };
}
