/**
 * GitLab CI: the job's `id_tokens:` keyword puts a JWT in an environment variable (GitLab 15.7+).
 * @see https://docs.gitlab.com/ci/yaml/#id_tokens
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { tokenBoundIdentity, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { DEFAULT_ID_TOKEN_VAR } from "../config/defaults.js";
import { audience, text } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "gitlab";

export class GitLabSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly variable: string;
  readonly credentialEnv: readonly string[];

  constructor(variable: string, audience: string | undefined) {
    this.variable = variable;
    this.credentialEnv = [variable];
    this.expectedAudience = audience;
  }

  /** The settings plus a fingerprint of the token itself: the same token means the same job identity. */
  cacheIdentity(context: SubjectTokenContext): Promise<string | undefined> {
    return tokenBoundIdentity(this, context, [this.variable]);
  }

  async getSubjectToken({ providerId, env }: SubjectTokenContext): Promise<string> {
    const value = env[this.variable]?.trim();
    if (value) return value;
    const aud = this.expectedAudience ?? "<your IdP audience>";
    const where = env.GITLAB_CI ? "" : " (this does not look like a GitLab CI job: GITLAB_CI is not set)";
    throw new SubjectTokenUnavailableError(
      SOURCE,
      `the variable ${this.variable} is not set${where}. Declare it in the job: \`id_tokens: { ${this.variable}: { aud: "${aud}" } }\`, or set subjectTokenSource.var to the name you use.`,
      { providerId },
    );
  }
}

export const gitlab = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** The `id_tokens` variable name. */
    var: z._default(text("var"), DEFAULT_ID_TOKEN_VAR),
    /** When set, the token's `aud` is checked locally against it before use. */
    audience,
  }),
  create: (config) => new GitLabSource(config.var, config.audience),
  platform: {
    name: "GitLab CI",
    signal: "GITLAB_CI=true",
    matches: (env) => env.GITLAB_CI === "true",
    details: { project: "CI_PROJECT_PATH", ref: "CI_COMMIT_REF_NAME", pipeline_source: "CI_PIPELINE_SOURCE", job: "CI_JOB_ID" },
    fromAuto: (settings) => new GitLabSource(settings.var, settings.audience),
  },
  summaryClaims: ["project_path", "namespace_path", "pipeline_source"],
  credentialEnv: [DEFAULT_ID_TOKEN_VAR],
});
