/** Builds the source a validated `subjectTokenSource` block describes. Adding a platform means one file and one case here. */
import type { SubjectTokenSourceConfig } from "../config/schema.js";
import { EnvSource } from "./env.js";
import { FileSource } from "./file.js";
import { GitHubActionsSource } from "./github-actions.js";
import { GitLabSource } from "./gitlab.js";
import type { SubjectTokenSource } from "./source.js";

export function createSubjectTokenSource(config: SubjectTokenSourceConfig): SubjectTokenSource {
  switch (config.type) {
    case "github_actions":
      return new GitHubActionsSource(config.audience);
    case "gitlab":
      return new GitLabSource(config.var, config.audience);
    case "file":
      return new FileSource(config.path, config.audience);
    case "env":
      return new EnvSource(config.var, config.audience);
  }
}
