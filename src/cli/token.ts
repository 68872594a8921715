/**
 * `token`: a fresh access token for one provider, for scripts that need the job's identity (curl, other tools).
 * On GitHub Actions the token is masked (`::add-mask::`, on stderr) before it is printed, and `--github-output`
 * writes it to $GITHUB_OUTPUT instead of stdout.
 */
import { randomBytes } from "node:crypto";
import { appendFile } from "node:fs/promises";
import { parseProvider } from "../config/parse.js";
import type { Logger } from "../log.js";
import { TokenProvider } from "../token-provider.js";
import type { OpencodeConfig } from "./config-files.js";

export interface TokenInput {
  config: OpencodeConfig;
  providerId: string;
  json: boolean;
  githubOutput?: string | undefined;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** stdout: the token (or its JSON) and nothing else. */
  write: (text: string) => void;
  /** stderr: the `::add-mask::` command on GitHub Actions. */
  writeError: (text: string) => void;
  fetch?: typeof globalThis.fetch;
}

export class TokenCommandError extends Error {}

export async function runToken(input: TokenInput): Promise<void> {
  const entry = input.config.provider?.[input.providerId];
  if (entry?.options?.oauth2 === undefined)
    throw new TokenCommandError(
      `provider "${input.providerId}" has no options.oauth2 in the opencode config (run \`opencode-ci-auth doctor\` to see what was found)`,
    );
  const parsed = parseProvider(input.providerId, entry, input.env);
  if (!parsed.ok) throw parsed.error;
  const outputFile = input.githubOutput ? input.env.GITHUB_OUTPUT : undefined;
  if (input.githubOutput && !outputFile)
    throw new TokenCommandError("--github-output needs $GITHUB_OUTPUT, which GitHub Actions sets in every step; it is not set here");
  if (input.githubOutput && !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(input.githubOutput))
    throw new TokenCommandError(`--github-output: "${input.githubOutput}" is not a valid output name`);

  const token = await new TokenProvider(input.providerId, parsed.config, {
    env: input.env,
    logger: input.logger,
    fetch: input.fetch,
  }).getToken();
  // Mask first: from here on GitHub hides the value in every log line of the job. On stderr, which the runner
  // reads for workflow commands as it reads stdout, so that `TOKEN=$(opencode-ci-auth token …)` holds only the token.
  if (input.env.GITHUB_ACTIONS === "true") input.writeError(`::add-mask::${token.value}\n`);
  if (outputFile && input.githubOutput) {
    const delimiter = `ghadelimiter_${randomBytes(16).toString("hex")}`;
    await appendFile(outputFile, `${input.githubOutput}<<${delimiter}\n${token.value}\n${delimiter}\n`, { mode: 0o600 });
  }
  const meta = { token_type: token.tokenType, expires_at: new Date(token.expiresAt).toISOString(), scope: token.scope ?? null };
  if (input.json) input.write(`${JSON.stringify(outputFile ? meta : { access_token: token.value, ...meta })}\n`);
  else if (!outputFile) input.write(`${token.value}\n`);
}
