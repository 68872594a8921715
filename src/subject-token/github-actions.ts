/**
 * GitHub Actions: ask the job's token service for a fresh OIDC token with the configured audience.
 * @see https://docs.github.com/en/actions/concepts/security/openid-connect
 * @see https://docs.github.com/en/actions/reference/security/oidc (the claims, and both forms of `sub`)
 */
import { readFile } from "node:fs/promises";
import { SubjectTokenUnavailableError } from "../errors.js";
import { insecureReason } from "../http/transport.js";
import { requestTokenOverHttp } from "./http-token-request.js";
import { tokenFromJson } from "./json-token-field.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience } from "../config/fields.js";
import { defineSource } from "./definition.js";
import { immutableSubjectNotes } from "./github-subject.js";

const SOURCE = "github_actions";
/** Together they mint this job's OIDC token for any audience until the job ends. */
const CREDENTIAL_ENV = ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"] as const;
const MISSING_PERMISSION =
  "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set. Add `permissions: id-token: write` to the workflow or job. " +
  "Pull requests from forks of public repositories never get these; see docs/troubleshooting.md for alternatives.";

interface EventRepository {
  id?: unknown;
  full_name?: unknown;
}

/**
 * Whether a pull request's head lives in another repository than its base. `repo.fork` says whether a repository is
 * a fork, not whether the pull request comes from one: a pull request between two branches of a repository that is
 * itself a fork has `fork: true` on both sides. A deleted fork leaves `head.repo` null. Ids survive renames, so they
 * win over names when both are there. Anything else (no base repository, odd types) is not called a fork.
 * @see https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request (`head.repo` is a nullable repository)
 */
function headIsAnotherRepository(pullRequest: unknown): boolean {
  if (typeof pullRequest !== "object" || pullRequest === null) return false;
  const { head, base } = pullRequest as { head?: { repo?: EventRepository | null }; base?: { repo?: EventRepository | null } };
  const baseRepo = base?.repo;
  if (typeof baseRepo !== "object" || baseRepo === null) return false;
  const headRepo = head?.repo;
  if (headRepo === null) return true;
  if (typeof headRepo !== "object") return false;
  if (typeof headRepo.id === "number" && typeof baseRepo.id === "number") return headRepo.id !== baseRepo.id;
  if (typeof headRepo.full_name === "string" && typeof baseRepo.full_name === "string") return headRepo.full_name !== baseRepo.full_name;
  return false;
}

/** True when the job runs for a pull request from a fork (GitHub withholds OIDC there). */
async function isForkPullRequest(env: NodeJS.ProcessEnv): Promise<boolean> {
  const path = env.GITHUB_EVENT_PATH;
  const event = env.GITHUB_EVENT_NAME;
  // pull_request_target runs in the base repository and may get OIDC tokens: a missing permission there is not a fork problem.
  if (!path || !event?.startsWith("pull_request") || event === "pull_request_target") return false;
  try {
    const payload = JSON.parse(await readFile(path, "utf8")) as { pull_request?: unknown };
    return headIsAnotherRepository(payload.pull_request);
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
          "this job runs for a pull request from a fork, and GitHub withholds OIDC tokens from those (always for forks of public repositories). " +
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
    details: {
      repository: "GITHUB_REPOSITORY",
      ref: "GITHUB_REF",
      event: "GITHUB_EVENT_NAME",
      workflow: "GITHUB_WORKFLOW_REF",
      run: "GITHUB_RUN_ID",
    },
    fromAuto: (settings) => new GitHubActionsSource(settings.audience),
  },
  summaryClaims: [
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "ref",
    "ref_type",
    "environment",
    "workflow_ref",
    "job_workflow_ref",
    "event_name",
    "runner_environment",
  ],
  notes: immutableSubjectNotes,
  credentialEnv: CREDENTIAL_ENV,
});
