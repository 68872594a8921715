/**
 * Buildkite: `buildkite-agent oidc request-token [--audience …] [--lifetime …] [--claim …]`, which the agent answers
 * for the running job. The agent retries its own request (see DEFAULT_BUILDKITE_TIMEOUT_SECONDS), so this source has
 * a time limit of its own, longer than `timeoutSeconds`.
 * @see https://buildkite.com/docs/agent/cli/reference/oidc (claims, optional claims, default audience and lifetime)
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { runTokenCommand } from "./run-command.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { DEFAULT_BUILDKITE_TIMEOUT_SECONDS } from "../config/defaults.js";
import { audience, stringList, timeoutSeconds } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "buildkite";
/** The agent's job token: `buildkite-agent oidc request-token` mints tokens with it. */
const CREDENTIAL_ENV = ["BUILDKITE_AGENT_ACCESS_TOKEN"] as const;
/**
 * The claims Buildkite adds only when asked with `--claim` (organization_id is the immutable one an IdP should pin;
 * organization_slug, always there, can be renamed). `agent_tag:<name>` adds one agent tag.
 */
const OPTIONAL_CLAIM = /^(organization_id|pipeline_id|build_id|cluster_id|cluster_name|queue_id|queue_key|agent_tag:[^\s,]+)$/;
const OPTIONAL_CLAIMS = "organization_id, pipeline_id, build_id, cluster_id, cluster_name, queue_id, queue_key, agent_tag:<name>";
const CONTAINER_FIX =
  "In a container step, mount the agent into it (docker plugin: `mount-buildkite-agent: true`), which also passes these variables.";

export class BuildkiteSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;
  readonly lifetimeSeconds: number | undefined;
  /** Optional claims, one `--claim` each. */
  readonly claims: readonly string[];
  readonly timeoutMs: number;

  constructor(
    audience: string | undefined,
    lifetimeSeconds: number | undefined,
    claims: readonly string[] = [],
    timeoutSeconds = DEFAULT_BUILDKITE_TIMEOUT_SECONDS,
  ) {
    this.expectedAudience = audience;
    this.lifetimeSeconds = lifetimeSeconds;
    this.claims = claims;
    this.timeoutMs = timeoutSeconds * 1000;
  }

  /** The settings that shape the token, the job (a UUID per job) and a fingerprint of its agent access token, which only that job holds. */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const agentToken = env.BUILDKITE_AGENT_ACCESS_TOKEN;
    return identityOf([
      SOURCE,
      this.expectedAudience ?? "(default)",
      String(this.lifetimeSeconds ?? "(default)"),
      this.claims.length ? [...this.claims].sort().join(",") : "(none)",
      env.BUILDKITE_JOB_ID,
      agentToken ? fingerprint(agentToken) : undefined,
    ]);
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const missing = ["BUILDKITE_JOB_ID", "BUILDKITE_AGENT_ACCESS_TOKEN"].filter((name) => !env[name]);
    if (missing.length) {
      const where = env.BUILDKITE === "true" ? "" : " (this does not look like a Buildkite job: BUILDKITE is not set)";
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not set${where}. The agent sets BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN in every job. ${CONTAINER_FIX}`,
        {
          providerId,
        },
      );
    }
    const args = ["oidc", "request-token"];
    if (this.expectedAudience !== undefined) args.push("--audience", this.expectedAudience);
    if (this.lifetimeSeconds !== undefined) args.push("--lifetime", String(this.lifetimeSeconds));
    for (const claim of this.claims) args.push("--claim", claim);
    return runTokenCommand({
      source: SOURCE,
      providerId,
      program: "buildkite-agent",
      args,
      label: "`buildkite-agent oidc request-token`",
      timeoutMs: this.timeoutMs,
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
    /** `--lifetime` in seconds. Omitted: Buildkite's default (5 minutes). */
    lifetimeSeconds: z.optional(
      z
        .int({ error: "lifetimeSeconds must be a whole number of seconds" })
        .check(z.positive({ error: "lifetimeSeconds must be more than 0" })),
    ),
    /** Optional claims to add, one `--claim` each. Omitted: none. */
    claims: z.optional(
      z.pipe(
        stringList("claims").check(
          z.superRefine((items, ctx) => {
            for (const item of items) {
              if (!OPTIONAL_CLAIM.test(item))
                ctx.addIssue({
                  code: "custom",
                  message: `claims must list Buildkite's optional claims (${OPTIONAL_CLAIMS}): "${item}" is not one`,
                });
            }
          }),
        ),
        z.transform((items: string[]) => [...new Set(items)]),
      ),
    ),
    /** Limit for `buildkite-agent oidc request-token`, long enough for the agent's own retries. */
    timeoutSeconds: timeoutSeconds("timeoutSeconds", DEFAULT_BUILDKITE_TIMEOUT_SECONDS),
  }),
  create: (config) => new BuildkiteSource(config.audience, config.lifetimeSeconds, config.claims, config.timeoutSeconds),
  platform: {
    name: "Buildkite",
    signal: "BUILDKITE=true",
    matches: (env) => env.BUILDKITE === "true",
    details: {
      organization: "BUILDKITE_ORGANIZATION_SLUG",
      pipeline: "BUILDKITE_PIPELINE_SLUG",
      branch: "BUILDKITE_BRANCH",
      build: "BUILDKITE_BUILD_NUMBER",
    },
    fromAuto: (settings) => new BuildkiteSource(settings.audience, undefined, [], DEFAULT_BUILDKITE_TIMEOUT_SECONDS),
  },
  summaryClaims: ["organization_slug", "organization_id", "pipeline_slug", "pipeline_id", "build_branch"],
  credentialEnv: CREDENTIAL_ENV,
});
