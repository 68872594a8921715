/**
 * Bitbucket Pipelines: a step with `oidc: true` gets its token in `BITBUCKET_STEP_OIDC_TOKEN`.
 * @see https://support.atlassian.com/bitbucket-cloud/docs/integrate-pipelines-with-resource-servers-using-oidc/
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";

const SOURCE = "bitbucket";

export class BitbucketSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = ["BITBUCKET_STEP_OIDC_TOKEN"] as const;

  constructor(audience: string | undefined) {
    this.expectedAudience = audience;
  }

  /** The step (a UUID per step run) and a fingerprint of its token, which Bitbucket issues once per step. */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const token = env.BITBUCKET_STEP_OIDC_TOKEN?.trim();
    return identityOf([SOURCE, this.expectedAudience ?? "(none)", env.BITBUCKET_REPO_UUID, env.BITBUCKET_STEP_UUID, token ? fingerprint(token) : undefined]);
  }

  async getSubjectToken({ providerId, env }: SubjectTokenContext): Promise<string> {
    const value = env.BITBUCKET_STEP_OIDC_TOKEN?.trim();
    if (value) return value;
    const where = env.BITBUCKET_BUILD_NUMBER ? "" : " (this does not look like a Bitbucket Pipelines step: BITBUCKET_BUILD_NUMBER is not set)";
    throw new SubjectTokenUnavailableError(SOURCE, `BITBUCKET_STEP_OIDC_TOKEN is not set${where}. Add \`oidc: true\` to the step that runs opencode in bitbucket-pipelines.yml.`, {
      providerId,
    });
  }
}
