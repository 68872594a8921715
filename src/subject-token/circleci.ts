/**
 * CircleCI: the job's `CIRCLE_OIDC_TOKEN_V2` (its `aud` is the organization id), or, when an audience is
 * configured, a token minted for it with `circleci run oidc get --claims '{"aud":"…"}'`.
 * No context is needed: CircleCI's docs once said the token was only in jobs that use one, and no longer do (their
 * "OpenID Connect token availability" lists the variables with no condition but forks; CircleCI-Public/aws-cli-orb#197).
 * @see https://circleci.com/docs/openid-connect-tokens/
 * @see https://circleci.com/docs/oidc-tokens-with-custom-claims/
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { runTokenCommand } from "./run-command.js";
import { identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "circleci";
const CREDENTIAL_ENV = ["CIRCLE_OIDC_TOKEN", "CIRCLE_OIDC_TOKEN_V2"] as const;
const NO_TOKEN =
  "CircleCI sets it in every job of a project on CircleCI cloud or server 4.4+ (not in an air-gapped installation); if it is missing, check that the job runs there. " +
  'Jobs of pull requests from forks get none unless the project enables "Pass secrets to builds from forked pull requests" (docs/troubleshooting.md).';

export class CircleCiSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;

  constructor(audience: string | undefined) {
    this.expectedAudience = audience;
  }

  /** The job (a UUID per job run) and the parallel container it runs in. */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    return identityOf([SOURCE, this.expectedAudience ?? "(organization id)", env.CIRCLE_WORKFLOW_JOB_ID, env.CIRCLE_NODE_INDEX ?? "0"]);
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const where = env.CIRCLECI === "true" ? "" : " (this does not look like a CircleCI job: CIRCLECI is not set)";
    const inEnv = env.CIRCLE_OIDC_TOKEN_V2?.trim() || env.CIRCLE_OIDC_TOKEN?.trim();
    if (this.expectedAudience === undefined) {
      if (inEnv) return inEnv;
      throw new SubjectTokenUnavailableError(SOURCE, `CIRCLE_OIDC_TOKEN_V2 is not set${where}. ${NO_TOKEN}`, { providerId });
    }
    return runTokenCommand({
      source: SOURCE,
      providerId,
      program: "circleci",
      args: ["run", "oidc", "get", "--claims", JSON.stringify({ aud: this.expectedAudience })],
      label: "`circleci run oidc get`",
      timeoutMs: context.timeoutMs,
      env,
      notFound:
        `the circleci command is not on PATH${where}. CircleCI provides it inside jobs to mint tokens with a custom audience (not in a container you start yourself); ` +
        "or remove subjectTokenSource.audience to use CIRCLE_OIDC_TOKEN_V2, whose aud is the organization id.",
      failureHint: inEnv ? undefined : `CIRCLE_OIDC_TOKEN_V2 is not set either: ${NO_TOKEN}`,
    });
  }
}

export const circleci = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** A custom `aud`, requested through the `circleci` CLI. Omitted: the token in the environment (aud = the organization id). */
    audience,
  }),
  create: (config) => new CircleCiSource(config.audience),
  platform: {
    name: "CircleCI",
    signal: "CIRCLECI=true",
    matches: (env) => env.CIRCLECI === "true",
    details: { project: "CIRCLE_PROJECT_REPONAME", branch: "CIRCLE_BRANCH", job: "CIRCLE_JOB", build: "CIRCLE_BUILD_NUM" },
    fromAuto: (settings) => new CircleCiSource(settings.audience),
  },
  summaryClaims: ["oidc.circleci.com/project-id", "oidc.circleci.com/vcs-origin", "oidc.circleci.com/vcs-ref"],
  credentialEnv: CREDENTIAL_ENV,
});
