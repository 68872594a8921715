/**
 * Which platform this process runs on, from environment variables only: detection never touches the network or
 * the disk, so it is instant and has no side effects. CI platforms come first: their runners often sit in
 * Kubernetes pods or on Google Cloud VMs, where the job's own identity is the one wanted.
 */

export type PlatformId = "github_actions" | "gitlab" | "circleci" | "buildkite" | "azure_pipelines" | "bitbucket" | "kubernetes" | "gcp_metadata";

export interface PlatformSignal {
  /** Also the `subjectTokenSource.type` of the platform. */
  id: PlatformId;
  name: string;
  /** What is looked for, for messages: `GITHUB_ACTIONS=true`. */
  signal: string;
  matches(env: NodeJS.ProcessEnv): boolean;
  /** Non-secret facts worth showing, as label → variable. */
  details: Readonly<Record<string, string>>;
}

const isSet = (value: string | undefined) => value !== undefined && value.trim() !== "";

export const PLATFORM_SIGNALS: readonly PlatformSignal[] = [
  {
    id: "github_actions",
    name: "GitHub Actions",
    signal: "GITHUB_ACTIONS=true",
    matches: (env) => env.GITHUB_ACTIONS === "true",
    details: { repository: "GITHUB_REPOSITORY", ref: "GITHUB_REF", event: "GITHUB_EVENT_NAME", workflow: "GITHUB_WORKFLOW_REF", run: "GITHUB_RUN_ID" },
  },
  {
    id: "gitlab",
    name: "GitLab CI",
    signal: "GITLAB_CI=true",
    matches: (env) => env.GITLAB_CI === "true",
    details: { project: "CI_PROJECT_PATH", ref: "CI_COMMIT_REF_NAME", pipeline_source: "CI_PIPELINE_SOURCE", job: "CI_JOB_ID" },
  },
  {
    id: "circleci",
    name: "CircleCI",
    signal: "CIRCLECI=true",
    matches: (env) => env.CIRCLECI === "true",
    details: { project: "CIRCLE_PROJECT_REPONAME", branch: "CIRCLE_BRANCH", job: "CIRCLE_JOB", build: "CIRCLE_BUILD_NUM" },
  },
  {
    id: "buildkite",
    name: "Buildkite",
    signal: "BUILDKITE=true",
    matches: (env) => env.BUILDKITE === "true",
    details: { organization: "BUILDKITE_ORGANIZATION_SLUG", pipeline: "BUILDKITE_PIPELINE_SLUG", branch: "BUILDKITE_BRANCH", build: "BUILDKITE_BUILD_NUMBER" },
  },
  {
    id: "azure_pipelines",
    name: "Azure Pipelines",
    signal: "TF_BUILD=True or SYSTEM_OIDCREQUESTURI",
    matches: (env) => /^true$/i.test(env.TF_BUILD ?? "") || isSet(env.SYSTEM_OIDCREQUESTURI),
    details: { project: "SYSTEM_TEAMPROJECT", repository: "BUILD_REPOSITORY_NAME", branch: "BUILD_SOURCEBRANCH", build: "BUILD_BUILDID" },
  },
  {
    id: "bitbucket",
    name: "Bitbucket Pipelines",
    signal: "BITBUCKET_BUILD_NUMBER",
    matches: (env) => isSet(env.BITBUCKET_BUILD_NUMBER),
    details: { repository: "BITBUCKET_REPO_FULL_NAME", branch: "BITBUCKET_BRANCH", build: "BITBUCKET_BUILD_NUMBER" },
  },
  {
    id: "kubernetes",
    name: "Kubernetes",
    signal: "KUBERNETES_SERVICE_HOST",
    matches: (env) => isSet(env.KUBERNETES_SERVICE_HOST),
    details: { pod: "HOSTNAME" },
  },
  {
    id: "gcp_metadata",
    name: "Google Cloud",
    signal: "GCE_METADATA_HOST, K_SERVICE or CLOUD_RUN_JOB",
    matches: (env) => isSet(env.GCE_METADATA_HOST) || isSet(env.K_SERVICE) || isSet(env.CLOUD_RUN_JOB),
    details: { service: "K_SERVICE", job: "CLOUD_RUN_JOB", metadata: "GCE_METADATA_HOST" },
  },
];

/** The variables looked for, in order, for "nothing matched" messages. */
export const LOOKED_FOR = PLATFORM_SIGNALS.map((p) => p.signal).join(", ");

/** The first platform whose signal is in `env`, or undefined. */
export function detectPlatformFromEnv(env: NodeJS.ProcessEnv): PlatformSignal | undefined {
  return PLATFORM_SIGNALS.find((p) => p.matches(env));
}
