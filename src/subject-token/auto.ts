/**
 * `auto`: the source of the platform this job runs on, detected from the environment (detect-platform.ts), with
 * the same settings; so one config works when a team moves CI. Detection happens for every call, from the
 * context's environment, and never probes the network. A platform that is detected but not set up for OIDC fails
 * with that platform's own fix (its source's message); nothing detected fails with the list of what was looked for.
 */
import * as z from "zod/mini";
import { DEFAULT_ID_TOKEN_VAR, DEFAULT_KUBERNETES_TOKEN_PATH } from "../config/defaults.js";
import { audience, text } from "../config/fields.js";
import { SubjectTokenUnavailableError } from "../errors.js";
import { defineSource, type AutoSettings, type SourceDefinition } from "./definition.js";
import { detectPlatformIn, detectablePlatforms, lookedFor, type DetectedPlatform } from "./detect-platform.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./source.js";

const SOURCE = "auto";

export class AutoSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** Every platform's: whichever is detected, its credentials are kept from the agent. */
  readonly credentialEnv: readonly string[];
  readonly #settings: AutoSettings;
  readonly #platforms: readonly DetectedPlatform[];

  /** `platforms`: the detectable platforms, in the order they are tried (from the table in sources.ts). */
  constructor(settings: AutoSettings, platforms: readonly DetectedPlatform[], credentialEnv: readonly string[]) {
    this.#settings = settings;
    this.#platforms = platforms;
    this.expectedAudience = settings.audience;
    this.credentialEnv = credentialEnv;
  }

  /** The detected platform's source, or a SubjectTokenUnavailableError that says what was looked for. */
  resolve(env: NodeJS.ProcessEnv, providerId: string): { platform: DetectedPlatform; source: SubjectTokenSource } {
    const platform = detectPlatformIn(env, this.#platforms);
    if (!platform) {
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `no supported platform detected (looked for ${lookedFor(this.#platforms)}). Run inside a CI job, or set subjectTokenSource.type to the source you need (docs/configuration.md#auto).`,
        { providerId },
      );
    }
    const unusable = (fix: string): never => {
      throw new SubjectTokenUnavailableError(SOURCE, `this job runs on ${platform.name} (${platform.signal}), ${fix}`, { providerId });
    };
    return { platform, source: platform.fromAuto(this.#settings, unusable) };
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

/** `auto` over the detectable platforms among `definitions`, in their order. */
export function autoSource(definitions: readonly SourceDefinition[]) {
  const platforms = detectablePlatforms(definitions);
  const credentialEnv = (var_: string) => [...new Set([...definitions.flatMap((d) => d.credentialEnv), var_])];
  return defineSource({
    type: SOURCE,
    schema: z.strictObject({
      type: z.literal(SOURCE),
      /** Requested (GitHub, CircleCI, Buildkite, Google Cloud) or checked locally (the others). */
      audience,
      /** GitLab only: the `id_tokens` variable. */
      var: z._default(text("var"), DEFAULT_ID_TOKEN_VAR),
      /**
       * Azure Pipelines only: the service connection id. Empty counts as not set, so `{env:VAR}` with a variable
       * only the Azure pipeline defines keeps the block valid on the other platforms.
       */
      serviceConnectionId: z.pipe(
        z.optional(z.string({ error: "serviceConnectionId must be a string" }).check(z.trim())),
        z.transform((v: string | undefined) => (v ? v : undefined)),
      ),
      /** Kubernetes only: the projected token file. */
      path: z._default(text("path"), DEFAULT_KUBERNETES_TOKEN_PATH),
    }),
    create: (config) => new AutoSource(config, platforms, credentialEnv(config.var)),
    credentialEnv: [],
  });
}
