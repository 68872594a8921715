/** Which CI platform this process runs on, from its environment, and the source a config should use there. */

export interface Platform {
  id: "github_actions" | "gitlab" | "none";
  name: string;
  /** Non-secret facts worth showing (repository, ref, run). */
  details: Record<string, string>;
  /** The `subjectTokenSource.type` that fits this platform. */
  sourceType: string | undefined;
}

const pick = (env: NodeJS.ProcessEnv, names: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(names).flatMap(([label, name]) => (env[name] ? [[label, env[name] as string]] : [])));

export function detectPlatform(env: NodeJS.ProcessEnv = process.env): Platform {
  if (env.GITHUB_ACTIONS === "true") {
    return {
      id: "github_actions",
      name: "GitHub Actions",
      details: pick(env, { repository: "GITHUB_REPOSITORY", ref: "GITHUB_REF", event: "GITHUB_EVENT_NAME", workflow: "GITHUB_WORKFLOW_REF", run: "GITHUB_RUN_ID" }),
      sourceType: "github_actions",
    };
  }
  if (env.GITLAB_CI === "true") {
    return {
      id: "gitlab",
      name: "GitLab CI",
      details: pick(env, { project: "CI_PROJECT_PATH", ref: "CI_COMMIT_REF_NAME", pipeline_source: "CI_PIPELINE_SOURCE", job: "CI_JOB_ID" }),
      sourceType: "gitlab",
    };
  }
  return { id: "none", name: "no CI platform detected (looked for GITHUB_ACTIONS=true, GITLAB_CI=true)", details: {}, sourceType: undefined };
}
