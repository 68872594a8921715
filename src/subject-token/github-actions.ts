/**
 * GitHub Actions: ask the job's token service for a fresh OIDC token with the configured audience.
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
 */
import { readFile } from "node:fs/promises";
import { SubjectTokenUnavailableError } from "../errors.js";
import { insecureReason } from "../http/transport.js";
import { requestTokenOverHttp } from "./http-token-request.js";
import { tokenFromJson } from "./json-token-field.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import { z } from "zod";
import { audience } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "github_actions";
/** Together they mint this job's OIDC token for any audience until the job ends. */
const CREDENTIAL_ENV = ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"] as const;
const MISSING_PERMISSION =
  "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set. Add `permissions: id-token: write` to the workflow or job. " +
  "GitHub never gives these to pull requests from forks; see docs/troubleshooting.md for alternatives.";

/** True when the job runs for a pull request whose head is a fork (GitHub withholds OIDC there). */
async function isForkPullRequest(env: NodeJS.ProcessEnv): Promise<boolean> {
  const path = env.GITHUB_EVENT_PATH;
  const event = env.GITHUB_EVENT_NAME;
  // pull_request_target runs in the base repository and may get OIDC tokens: a missing permission there is not a fork problem.
  if (!path || !event?.startsWith("pull_request") || event === "pull_request_target") return false;
  try {
    const payload = JSON.parse(await readFile(path, "utf8")) as { pull_request?: { head?: { repo?: { fork?: unknown } } } };
    return payload.pull_request?.head?.repo?.fork === true;
  } catch {
    return false;
  }
}

export class GitHubActionsSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;

  constructor(audience: string | undefined) {
    this.expectedAudience = audience;
  }

  /**
   * The job run (server, repository, run, attempt, job) plus a fingerprint of the job's request token: matrix legs
   * share run id and job name but not that token, and only a holder of it could mint the subject token anyway.
   */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    return identityOf([
      SOURCE,
      this.expectedAudience ?? "(default)",
      env.GITHUB_SERVER_URL,
      env.GITHUB_REPOSITORY_ID ?? env.GITHUB_REPOSITORY,
      env.GITHUB_RUN_ID,
      env.GITHUB_RUN_ATTEMPT,
      env.GITHUB_JOB,
      requestToken ? fingerprint(requestToken) : undefined,
    ]);
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const requestUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
    const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    if (!requestUrl || !requestToken) {
      if (await isForkPullRequest(env)) {
        throw new SubjectTokenUnavailableError(
          SOURCE,
          "this job runs for a pull request from a fork, and GitHub never grants OIDC tokens to fork pull requests. " +
            "Run the AI step on push or behind a maintainer-approved `pull_request_target` gate that does not check out PR code (docs/troubleshooting.md).",
          { providerId },
        );
      }
      throw new SubjectTokenUnavailableError(SOURCE, MISSING_PERMISSION, { providerId });
    }
    let url: URL;
    try {
      url = new URL(requestUrl);
    } catch {
      throw new SubjectTokenUnavailableError(SOURCE, "ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL.", { providerId });
    }
    const insecure = insecureReason(url);
    if (insecure) throw new SubjectTokenUnavailableError(SOURCE, `ACTIONS_ID_TOKEN_REQUEST_URL: ${insecure}.`, { providerId });
    // The URL already carries `api-version`; append to its query rather than replace it.
    if (this.expectedAudience !== undefined) url.searchParams.set("audience", this.expectedAudience);

    const answer = await requestTokenOverHttp(context, {
      source: SOURCE,
      service: "the GitHub token service",
      url,
      headers: { authorization: `Bearer ${requestToken}`, accept: "application/json" },
      redirectReason: "the request token is only sent to ACTIONS_ID_TOKEN_REQUEST_URL",
    });
    return tokenFromJson(answer, { source: SOURCE, providerId, service: "the GitHub token service", url, field: "value" });
  }
}

export const githubActions = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** The `aud` the IdP expects. Omitted: GitHub's default, `https://github.com/<owner>`. */
    audience,
  }),
  create: (config) => new GitHubActionsSource(config.audience),
  platform: {
    name: "GitHub Actions",
    signal: "GITHUB_ACTIONS=true",
    matches: (env) => env.GITHUB_ACTIONS === "true",
    details: { repository: "GITHUB_REPOSITORY", ref: "GITHUB_REF", event: "GITHUB_EVENT_NAME", workflow: "GITHUB_WORKFLOW_REF", run: "GITHUB_RUN_ID" },
    fromAuto: (settings) => new GitHubActionsSource(settings.audience),
  },
  summaryClaims: ["repository", "ref", "ref_type", "environment", "workflow_ref", "job_workflow_ref", "event_name", "runner_environment"],
  credentialEnv: CREDENTIAL_ENV,
});
