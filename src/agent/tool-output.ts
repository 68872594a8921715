/**
 * `tool.execute.after`: every tool's result passes here before opencode stores it and sends it to the model. Known
 * secrets are replaced (redact-secrets.ts), in the text the model reads and in the title and metadata that the
 * session keeps. This catches a credential the agent found by a route the shell scrub cannot close (a file,
 * another process's environment); it cannot stop a command from sending it elsewhere itself.
 */
import type { AgentSecrets } from "./agent-secrets.js";

interface ToolAfterInput {
  tool: string;
}
interface ToolAfterOutput {
  title: string;
  output: string;
  metadata: unknown;
}

const MAX_DEPTH = 8;

function redactDeep(value: unknown, secrets: AgentSecrets, depth: number): unknown {
  if (typeof value === "string") return secrets.redact(value);
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    value.forEach((item, i) => (value[i] = redactDeep(item, secrets, depth + 1)));
    return value;
  }
  // In place: opencode keeps its own reference to the metadata object.
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) record[key] = redactDeep(record[key], secrets, depth + 1);
  return record;
}

export function createToolOutputHook(secrets: AgentSecrets) {
  return async (_input: ToolAfterInput, output: ToolAfterOutput): Promise<void> => {
    if (typeof output.output === "string") output.output = secrets.redact(output.output);
    if (typeof output.title === "string") output.title = secrets.redact(output.title);
    output.metadata = redactDeep(output.metadata, secrets, 0);
  };
}
