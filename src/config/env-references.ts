/**
 * opencode's `{env:VAR}` references. opencode substitutes them once, in the text of each config file as it reads
 * it, with the variable's value or "" (the name is taken as written, spaces included; checked with opencode
 * 1.18.33's `opencode debug config`). The plugin sees the result and must not substitute again: a value that came
 * from the environment and happens to contain `{env:OTHER}` would otherwise expand to OTHER's secret.
 *
 * The CLI reads config files itself, so it substitutes here, the same way, exactly once.
 */

const ENV_REFERENCE = /\{env:([^}]+)\}/g;

/** `text` with every `{env:NAME}` replaced by NAME's value, or "" when it is unset or empty. Not recursive. */
export function substituteEnvReferences(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(ENV_REFERENCE, (_, name: string) => env[name] || "");
}
