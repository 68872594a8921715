/**
 * `shell.env`: opencode asks plugins for extra environment before it starts a command for the agent (its bash
 * tool) or the user (`!` commands). The job's CI credentials are blanked there, so `env`, `printenv` or a
 * prompt-injected `curl` cannot hand them to the model provider or anyone else. The plugin's own requests read
 * the process environment, which this does not touch. docs/security.md lists what else starts processes.
 */
import type { Logger } from "../log.js";
import type { AgentSecrets } from "./agent-secrets.js";

interface ShellEnvInput {
  cwd: string;
}
interface ShellEnvOutput {
  env: Record<string, string>;
}

export function createShellEnvHook(secrets: AgentSecrets, logger: Logger) {
  let logged = false;
  return async (_input: ShellEnvInput, output: ShellEnvOutput): Promise<void> => {
    if (secrets.inheritShellEnv()) return;
    const blanked = secrets.blankedShellEnv();
    Object.assign(output.env, blanked);
    if (!logged && Object.keys(blanked).length > 0) {
      logged = true;
      logger.info(
        { event: "shell_env_blanked", variables: Object.keys(blanked) },
        `blanked in the agent's shell: ${Object.keys(blanked).join(", ")}`,
      );
    }
  };
}
