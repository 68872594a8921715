/**
 * What the agent must not see, gathered in one place per plugin instance: the environment variables that hold
 * the job's CI credentials (blanked in the agent's shell), and the secret values and token issuers to redact
 * from tool output. The config hook registers each managed provider; the token providers report the tokens
 * they obtain.
 */
import type { OAuth2Config } from "../config/schema.js";
import { EVERY_PLATFORM_CREDENTIAL_ENV } from "../subject-token/sources.js";
import type { SubjectTokenSource } from "../subject-token/source.js";
import { MIN_SECRET_LENGTH, redactSecrets } from "./redact-secrets.js";

/** The opt-out, for jobs whose agent needs the credentials in its shell: `OPENCODE_CI_AUTH_SHELL_ENV=inherit`. */
export const SHELL_ENV_MODE_ENV = "OPENCODE_CI_AUTH_SHELL_ENV";

export { EVERY_PLATFORM_CREDENTIAL_ENV };

/** How many recent access tokens are remembered for redaction (older ones have expired long before). */
const RECENT_ACCESS_TOKENS = 16;

/** Config values that are secrets themselves: a client secret, and the headers a url source sends. */
function configSecrets(config: OAuth2Config): string[] {
  const out: string[] = [];
  if (config.clientSecret) out.push(config.clientSecret);
  const source = config.subjectTokenSource;
  if (source.type === "url") out.push(...Object.values(source.headers ?? {}));
  return out;
}

export class AgentSecrets {
  readonly #env: NodeJS.ProcessEnv;
  /** Variables that hold credentials: every platform's, plus those of the configured sources. */
  readonly #variables = new Set<string>();
  readonly #configValues = new Set<string>();
  readonly #accessTokens: string[] = [];
  readonly #jwtIssuers = new Set<string>();

  /** `alwaysBlank`: the variables of every platform, blanked whatever the config says. */
  constructor(env: NodeJS.ProcessEnv, alwaysBlank: readonly string[]) {
    this.#env = env;
    for (const name of alwaysBlank) this.#variables.add(name);
  }

  /** A managed provider: its source's credential variables, its secrets, and its IdP's issuer. */
  addProvider(config: OAuth2Config, source: SubjectTokenSource): void {
    for (const name of source.credentialEnv) this.#variables.add(name);
    for (const value of configSecrets(config)) {
      this.#configValues.add(value);
      // The variables a `{env:VAR}` reference took it from (opencode substituted the value, so only the value is
      // left to tell): any variable whose value appears in it, e.g. `Bearer {env:TOKEN_SERVICE_TOKEN}`.
      for (const [name, envValue] of Object.entries(this.#env)) {
        if (envValue && envValue.length >= MIN_SECRET_LENGTH && value.includes(envValue)) this.#variables.add(name);
      }
    }
    if (config.issuer) this.#jwtIssuers.add(config.issuer);
  }

  /** An access token the plugin obtained (from a grant or the file cache). */
  accessToken(value: string): void {
    if (this.#accessTokens.includes(value)) return;
    this.#accessTokens.push(value);
    if (this.#accessTokens.length > RECENT_ACCESS_TOKENS) this.#accessTokens.shift();
  }

  /** The issuer of a subject token the plugin presented: any JWT it issues is the job's identity. */
  subjectTokenIssuer(iss: string): void {
    this.#jwtIssuers.add(iss);
  }

  /** Whether the job asked to keep the credentials in the agent's shell. */
  inheritShellEnv(): boolean {
    return (this.#env[SHELL_ENV_MODE_ENV] ?? "").trim().toLowerCase() === "inherit";
  }

  /** The credential variables set in this process, each mapped to "" (what `shell.env` applies). */
  blankedShellEnv(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of this.#variables) if (this.#env[name] !== undefined) out[name] = "";
    return out;
  }

  /** The names that would be blanked, for doctor and docs. */
  variables(): string[] {
    return [...this.#variables].sort();
  }

  /** `text` without any credential value, config secret, access token, or JWT of a known issuer. */
  redact(text: string): string {
    const values: string[] = [...this.#configValues, ...this.#accessTokens];
    for (const name of this.#variables) {
      const value = this.#env[name];
      if (value) values.push(value);
    }
    return redactSecrets(text, { values, jwtIssuers: this.#jwtIssuers });
  }
}
