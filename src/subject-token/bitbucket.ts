/**
 * Bitbucket Pipelines: a step with `oidc: true` gets its token in `BITBUCKET_STEP_OIDC_TOKEN`. Its audience is the
 * workspace's, unless `oidc: audiences: [...]` (on the step, or under `options` for every step) lists others: the
 * token then carries those (at most 10), as an array.
 * @see https://support.atlassian.com/bitbucket-cloud/docs/integrate-pipelines-with-resource-servers-using-oidc/
 * @see https://www.atlassian.com/blog/bitbucket/bitbucket-pipelines-oidc-now-supports-multiple-audiences
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "bitbucket";
const CREDENTIAL_ENV = ["BITBUCKET_STEP_OIDC_TOKEN"] as const;

export class BitbucketSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;

  constructor(audience: string | undefined) {
    this.expectedAudience = audience;
  }

  /** The step (a UUID per step run) and a fingerprint of its token, which Bitbucket issues once per step. */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const token = env.BITBUCKET_STEP_OIDC_TOKEN?.trim();
    return identityOf([
      SOURCE,
      this.expectedAudience ?? "(none)",
      env.BITBUCKET_REPO_UUID,
      env.BITBUCKET_STEP_UUID,
      token ? fingerprint(token) : undefined,
    ]);
  }

  async getSubjectToken({ providerId, env }: SubjectTokenContext): Promise<string> {
    const value = env.BITBUCKET_STEP_OIDC_TOKEN?.trim();
    if (value) return value;
    const where = env.BITBUCKET_BUILD_NUMBER
      ? ""
      : " (this does not look like a Bitbucket Pipelines step: BITBUCKET_BUILD_NUMBER is not set)";
    throw new SubjectTokenUnavailableError(
      SOURCE,
      `BITBUCKET_STEP_OIDC_TOKEN is not set${where}. Enable OIDC on the step that runs opencode in bitbucket-pipelines.yml: \`oidc: true\`, or \`oidc: { audiences: [<your IdP's audience>] }\` to choose the token's audience.`,
      {
        providerId,
      },
    );
  }
}

export const bitbucket = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** When set, the token's `aud` is checked locally: the workspace's, or one of the step's `oidc: audiences`. */
    audience,
  }),
  create: (config) => new BitbucketSource(config.audience),
  platform: {
    name: "Bitbucket Pipelines",
    signal: "BITBUCKET_BUILD_NUMBER",
    matches: (env) => (env.BITBUCKET_BUILD_NUMBER ?? "").trim() !== "",
    details: { repository: "BITBUCKET_REPO_FULL_NAME", branch: "BITBUCKET_BRANCH", build: "BITBUCKET_BUILD_NUMBER" },
    fromAuto: (settings) => new BitbucketSource(settings.audience),
  },
  summaryClaims: ["workspaceUuid", "repositoryUuid", "branchName"],
  credentialEnv: CREDENTIAL_ENV,
});
