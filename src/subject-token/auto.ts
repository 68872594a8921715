/**
 * `auto`: the source of the platform this job runs on, detected from the environment (detect-platform.ts), with
 * the same settings; so one config works when a team moves CI. Detection happens for every call, from the
 * context's environment, and never probes the network. A platform that is detected but not set up for OIDC fails
 * with that platform's own fix (its source's message); nothing detected fails with the list of what was looked for.
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { AzurePipelinesSource } from "./azure-pipelines.js";
import { BitbucketSource } from "./bitbucket.js";
import { BuildkiteSource } from "./buildkite.js";
import { CircleCiSource } from "./circleci.js";
import { LOOKED_FOR, detectPlatformFromEnv, type PlatformSignal } from "./detect-platform.js";
import { GcpMetadataSource } from "./gcp-metadata.js";
import { GitHubActionsSource } from "./github-actions.js";
import { GitLabSource } from "./gitlab.js";
import { KubernetesSource } from "./kubernetes.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./source.js";

const SOURCE = "auto";

export interface AutoSourceOptions {
  audience?: string | undefined;
  /** GitLab: the `id_tokens` variable. */
  var: string;
  /** Azure Pipelines: the service connection id. */
  serviceConnectionId?: string | undefined;
  /** Kubernetes: the projected token file. */
  path: string;
  /** Google Cloud: the metadata server when GCE_METADATA_HOST is not set. */
  defaultMetadataBaseUrl: string;
}

export class AutoSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** Every platform's: whichever is detected, its credentials are kept from the agent. */
  readonly credentialEnv: readonly string[];
  readonly #options: AutoSourceOptions;

  constructor(options: AutoSourceOptions) {
    this.#options = options;
    this.expectedAudience = options.audience;
    this.credentialEnv = [
      ...new GitHubActionsSource(undefined).credentialEnv,
      ...new GitLabSource(options.var, undefined).credentialEnv,
      ...new CircleCiSource(undefined).credentialEnv,
      ...new BuildkiteSource(undefined, undefined).credentialEnv,
      ...new AzurePipelinesSource("", undefined).credentialEnv,
      ...new BitbucketSource(undefined).credentialEnv,
    ];
  }

  /** The detected platform's source, or a SubjectTokenUnavailableError that says what was looked for. */
  resolve(env: NodeJS.ProcessEnv, providerId: string): { platform: PlatformSignal; source: SubjectTokenSource } {
    const platform = detectPlatformFromEnv(env);
    if (!platform) {
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `no supported platform detected (looked for ${LOOKED_FOR}). Run inside a CI job, or set subjectTokenSource.type to the source you need (docs/configuration.md#auto).`,
        { providerId },
      );
    }
    return { platform, source: this.#sourceFor(platform, providerId) };
  }

  #sourceFor(platform: PlatformSignal, providerId: string): SubjectTokenSource {
    const { audience } = this.#options;
    const detected = `this job runs on ${platform.name} (${platform.signal})`;
    switch (platform.id) {
      case "github_actions":
        return new GitHubActionsSource(audience);
      case "gitlab":
        return new GitLabSource(this.#options.var, audience);
      case "circleci":
        return new CircleCiSource(audience);
      case "buildkite":
        return new BuildkiteSource(audience, undefined);
      case "azure_pipelines":
        if (!this.#options.serviceConnectionId) {
          throw new SubjectTokenUnavailableError(
            SOURCE,
            `${detected}, where a token is minted for a service connection: set subjectTokenSource.serviceConnectionId to the id of the Azure Resource Manager service connection (workload identity federation) to use.`,
            { providerId },
          );
        }
        return new AzurePipelinesSource(this.#options.serviceConnectionId, audience);
      case "bitbucket":
        return new BitbucketSource(audience);
      case "kubernetes":
        return new KubernetesSource(this.#options.path, audience);
      case "gcp_metadata":
        if (!audience) {
          throw new SubjectTokenUnavailableError(SOURCE, `${detected}, whose metadata server needs an audience: set subjectTokenSource.audience to the one your IdP expects.`, {
            providerId,
          });
        }
        return new GcpMetadataSource(audience, undefined, this.#options.defaultMetadataBaseUrl);
    }
  }

  async cacheIdentity(context: SubjectTokenContext): Promise<string | undefined> {
    try {
      return await this.resolve(context.env, context.providerId).source.cacheIdentity(context);
    } catch {
      return undefined;
    }
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    return this.resolve(context.env, context.providerId).source.getSubjectToken(context);
  }
}
