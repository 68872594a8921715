/**
 * doctor's warning about the agent: when the job can mint tokens (a CI credential variable is set) and the
 * config lets the agent run shell commands, say what the plugin does about it and what it cannot do.
 */
import { EVERY_PLATFORM_CREDENTIAL_ENV, SHELL_ENV_MODE_ENV } from "../agent/agent-secrets.js";
import type { OpencodeConfig } from "./config-files.js";

type Settings = { tools?: Record<string, unknown>; permission?: Record<string, unknown> } | undefined;

const disables = (s: Settings) => s?.tools?.bash === false || s?.permission?.bash === "deny";
const enables = (s: Settings) => s?.tools?.bash === true || s?.permission?.bash === "allow" || s?.permission?.bash === "ask";

/**
 * Whether some agent may run bash: on by default; off when the config says `tools.bash: false` or
 * `permission.bash: "deny"`, unless an agent (`agent.<name>`) turns it back on.
 */
export function bashToolEnabled(config: OpencodeConfig): boolean {
  const agents = Object.values((config.agent as Record<string, Settings> | undefined) ?? {});
  return !disables(config as Settings) || agents.some(enables);
}

/** The one-line warning, or undefined when there is nothing to warn about. */
export function agentExposureWarning(
  config: OpencodeConfig,
  env: NodeJS.ProcessEnv,
  extraCredentialEnv: readonly string[] = [],
): string | undefined {
  const present = [...new Set([...EVERY_PLATFORM_CREDENTIAL_ENV, ...extraCredentialEnv])].filter((name) => env[name]);
  if (present.length === 0 || !bashToolEnabled(config)) return undefined;
  const inherit = (env[SHELL_ENV_MODE_ENV] ?? "").trim().toLowerCase() === "inherit";
  const kept = inherit
    ? `${SHELL_ENV_MODE_ENV}=inherit keeps them in the agent's shell`
    : "the plugin blanks them in the agent's shell and redacts them from tool output, but a command can still read them from another process's environment";
  return `the agent's bash tool is on in a job that can mint tokens (${present.join(", ")} set): ${kept}. Run no untrusted code here, and pin job_workflow_ref in the IdP's policy (docs/security.md#the-agents-shell-and-tool-output).`;
}
