/**
 * GitLab CI: the job's `id_tokens:` keyword puts a JWT in an environment variable (GitLab 15.7+).
 * @see https://docs.gitlab.com/ci/yaml/#id_tokens
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { tokenBoundIdentity, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";

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
