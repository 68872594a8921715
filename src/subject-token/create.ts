/** Builds the source a validated `subjectTokenSource` block describes. Adding a platform means one file and one case here. */
import { DEFAULT_METADATA_BASE_URL, type SubjectTokenSourceConfig } from "../config/source-schema.js";
import { AutoSource } from "./auto.js";
import { AzurePipelinesSource } from "./azure-pipelines.js";
import { BitbucketSource } from "./bitbucket.js";
import { BuildkiteSource } from "./buildkite.js";
import { CircleCiSource } from "./circleci.js";
import { EnvSource } from "./env.js";
import { ExecSource } from "./exec.js";
import { FileSource } from "./file.js";
import { GcpMetadataSource } from "./gcp-metadata.js";
import { GitHubActionsSource } from "./github-actions.js";
import { GitLabSource } from "./gitlab.js";
import { KubernetesSource } from "./kubernetes.js";
import type { SubjectTokenSource } from "./source.js";
import { UrlSource } from "./url.js";

export function createSubjectTokenSource(config: SubjectTokenSourceConfig): SubjectTokenSource {
  switch (config.type) {
    case "github_actions":
      return new GitHubActionsSource(config.audience);
    case "gitlab":
      return new GitLabSource(config.var, config.audience);
    case "circleci":
      return new CircleCiSource(config.audience);
    case "buildkite":
      return new BuildkiteSource(config.audience, config.lifetimeSeconds);
    case "azure_pipelines":
      return new AzurePipelinesSource(config.serviceConnectionId, config.audience);
    case "bitbucket":
      return new BitbucketSource(config.audience);
    case "kubernetes":
      return new KubernetesSource(config.path, config.audience);
    case "gcp_metadata":
      return new GcpMetadataSource(config.audience, config.metadataBaseUrl, DEFAULT_METADATA_BASE_URL);
    case "url":
      return new UrlSource(config);
    case "exec": {
      const [program, ...args] = config.command;
      // The schema guarantees at least one item.
      return new ExecSource([program as string, ...args], config.timeoutSeconds, config.audience);
    }
    case "auto":
      return new AutoSource({ ...config, defaultMetadataBaseUrl: DEFAULT_METADATA_BASE_URL });
    case "file":
      return new FileSource(config.path, config.audience);
    case "env":
      return new EnvSource(config.var, config.audience);
  }
}
