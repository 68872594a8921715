/**
 * The table of subject-token sources. Everything that depends on the list of platforms is derived from it: the
 * config schema and its list of `type`s (config/source-schema.ts), the factory below, `auto`'s detection and
 * doctor's platform line, the claims worth showing (claims.ts), and the credential variables kept from the agent.
 *
 * Adding a platform: one module that exports its `defineSource({ … })`, and one line here.
 */
import type { JWTPayload } from "jose";
import { autoSource } from "./auto.js";
import { azurePipelines } from "./azure-pipelines.js";
import { bitbucket } from "./bitbucket.js";
import { buildkite } from "./buildkite.js";
import { circleci } from "./circleci.js";
import type { SourceDefinition } from "./definition.js";
import { detectPlatformIn, detectablePlatforms, lookedFor, type DetectedPlatform } from "./detect-platform.js";
import { env } from "./env.js";
import { exec } from "./exec.js";
import { file } from "./file.js";
import { gcpMetadata } from "./gcp-metadata.js";
import { githubActions } from "./github-actions.js";
import { gitlab } from "./gitlab.js";
import { kubernetes } from "./kubernetes.js";
import type { SubjectTokenSource } from "./source.js";
import { url } from "./url.js";

/** The CI platforms, in the order `auto` tries them. */
const CI_PLATFORMS = [githubActions, gitlab, circleci, buildkite, azurePipelines, bitbucket, kubernetes, gcpMetadata] as const;

/** Every source, in the order the docs list them. */
export const SOURCES = [...CI_PLATFORMS, url, exec, autoSource(CI_PLATFORMS), file, env] as const;

/** Every `subjectTokenSource.type`, in the order the docs list them. */
export const SOURCE_TYPES = SOURCES.map((s) => s.type);

/** The platforms `auto` and doctor can detect, in order. */
export const PLATFORMS: readonly DetectedPlatform[] = detectablePlatforms(SOURCES);

/** What platform detection looked for, for "nothing matched" messages. */
export const LOOKED_FOR = lookedFor(PLATFORMS);

/** Every platform's credential variables (with default settings): kept from the agent whatever the config says. */
export const EVERY_PLATFORM_CREDENTIAL_ENV: readonly string[] = [...new Set(SOURCES.flatMap((s) => s.credentialEnv))];

/** The platform this process runs on, or undefined. */
export function detectPlatformFromEnv(environment: NodeJS.ProcessEnv): DetectedPlatform | undefined {
  return detectPlatformIn(environment, PLATFORMS);
}

/**
 * What the platforms say about a token, beyond its claims (doctor shows it under them). Every platform is asked,
 * whatever the source: a note keys on its platform's own claims, and a `file` or `env` source may hold any token.
 */
export function notesOnToken(payload: JWTPayload): string[] {
  return SOURCES.flatMap((s: SourceDefinition) => s.notes?.(payload) ?? []);
}

/** The validated `subjectTokenSource` block of any source in the table. */
export type SubjectTokenSourceConfig = ReturnType<(typeof SOURCES)[number]["schema"]["parse"]>;

/** Builds the source a validated `subjectTokenSource` block describes. */
export function createSubjectTokenSource(config: SubjectTokenSourceConfig): SubjectTokenSource {
  const definition = SOURCES.find((s) => s.type === config.type) as SourceDefinition | undefined;
  if (!definition) throw new TypeError(`unknown subjectTokenSource.type "${config.type}"`);
  return definition.create(config as never);
}
