/**
 * Buildkite: `buildkite-agent oidc request-token --audience … [--lifetime …]`, which the agent answers for the
 * running job.
 * @see https://buildkite.com/docs/agent/v3/cli-oidc
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { runTokenCommand } from "./run-command.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import { z } from "zod";
import { audience } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "buildkite";
/** The agent's job token: `buildkite-agent oidc request-token` mints tokens with it. */
const CREDENTIAL_ENV = ["BUILDKITE_AGENT_ACCESS_TOKEN"] as const;
const CONTAINER_FIX = "In a container step, mount the agent into it (docker plugin: `mount-buildkite-agent: true`), which also passes these variables.";

export class BuildkiteSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;
  readonly lifetimeSeconds: number | undefined;

  constructor(audience: string | undefined, lifetimeSeconds: number | undefined) {
    this.expectedAudience = audience;
    this.lifetimeSeconds = lifetimeSeconds;
  }

  /** The job (a UUID per job) and a fingerprint of its agent access token, which only that job holds. */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const agentToken = env.BUILDKITE_AGENT_ACCESS_TOKEN;
    return identityOf([
      SOURCE,
      this.expectedAudience ?? "(default)",
      String(this.lifetimeSeconds ?? "(default)"),
      env.BUILDKITE_JOB_ID,
      agentToken ? fingerprint(agentToken) : undefined,
    ]);
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const missing = ["BUILDKITE_JOB_ID", "BUILDKITE_AGENT_ACCESS_TOKEN"].filter((name) => !env[name]);
    if (missing.length) {
      const where = env.BUILDKITE === "true" ? "" : " (this does not look like a Buildkite job: BUILDKITE is not set)";
      throw new SubjectTokenUnavailableError(SOURCE, `${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not set${where}. The agent sets BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN in every job. ${CONTAINER_FIX}`, {
        providerId,
      });
    }
    const args = ["oidc", "request-token"];
    if (this.expectedAudience !== undefined) args.push("--audience", this.expectedAudience);
    if (this.lifetimeSeconds !== undefined) args.push("--lifetime", String(this.lifetimeSeconds));
    return runTokenCommand({
      source: SOURCE,
      providerId,
      program: "buildkite-agent",
      args,
      label: "`buildkite-agent oidc request-token`",
      timeoutMs: context.timeoutMs,
      env,
      notFound: `buildkite-agent is not on PATH. The agent provides it to every job. ${CONTAINER_FIX}`,
    });
  }
}

export const buildkite = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** `--audience`. Omitted: Buildkite's default audience. */
    audience,
    /** `--lifetime` in seconds. Omitted: Buildkite's default. */
    lifetimeSeconds: z.int({ error: "lifetimeSeconds must be a whole number of seconds" }).positive({ error: "lifetimeSeconds must be more than 0" }).optional(),
  }),
  create: (config) => new BuildkiteSource(config.audience, config.lifetimeSeconds),
  platform: {
    name: "Buildkite",
    signal: "BUILDKITE=true",
    matches: (env) => env.BUILDKITE === "true",
    details: { organization: "BUILDKITE_ORGANIZATION_SLUG", pipeline: "BUILDKITE_PIPELINE_SLUG", branch: "BUILDKITE_BRANCH", build: "BUILDKITE_BUILD_NUMBER" },
    fromAuto: (settings) => new BuildkiteSource(settings.audience, undefined),
  },
  summaryClaims: ["organization_slug", "pipeline_slug", "build_branch"],
  credentialEnv: CREDENTIAL_ENV,
});
