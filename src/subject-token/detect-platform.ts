/**
 * Which CI platform this process runs on, from environment variables only: detection never touches the network or
 * the disk, so it is instant and has no side effects. The platforms and their order come from the table
 * (sources.ts): CI platforms first, since their runners often sit in Kubernetes pods or on Google Cloud VMs, where
 * the job's own identity is the one wanted.
 */
import type { PlatformDetection, SourceDefinition } from "./definition.js";

/** A detected platform: its source type and how it was recognised. */
export interface DetectedPlatform extends PlatformDetection {
  /** Also the `subjectTokenSource.type` of the platform. */
  id: string;
}

/** The platforms of `definitions` that can be detected, in order. */
export function detectablePlatforms(definitions: readonly SourceDefinition[]): DetectedPlatform[] {
  return definitions.flatMap((d) => (d.platform ? [{ ...d.platform, id: d.type as string }] : []));
}

/** The signals looked for, in order, for "nothing matched" messages. */
export function lookedFor(platforms: readonly DetectedPlatform[]): string {
  return platforms.map((p) => p.signal).join(", ");
}

/** The first platform whose signal is in `env`, or undefined. */
export function detectPlatformIn(env: NodeJS.ProcessEnv, platforms: readonly DetectedPlatform[]): DetectedPlatform | undefined {
  return platforms.find((p) => p.matches(env));
}
