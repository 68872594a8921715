/** Which CI platform this process runs on, from its environment, and the source a config should use there. */
import { LOOKED_FOR, detectPlatformFromEnv, type PlatformId } from "../subject-token/detect-platform.js";

export interface Platform {
  id: PlatformId | "none";
  name: string;
  /** Non-secret facts worth showing (repository, ref, run). */
  details: Record<string, string>;
  /** The `subjectTokenSource.type` that fits this platform. */
  sourceType: string | undefined;
}

const pick = (env: NodeJS.ProcessEnv, names: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(names).flatMap(([label, name]) => (env[name] ? [[label, env[name] as string]] : [])));

export function detectPlatform(env: NodeJS.ProcessEnv = process.env): Platform {
  const found = detectPlatformFromEnv(env);
  if (!found) return { id: "none", name: `no CI platform detected (looked for ${LOOKED_FOR})`, details: {}, sourceType: undefined };
  return { id: found.id, name: found.name, details: pick(env, found.details), sourceType: found.id };
}

/** Whether a source type suits the platform: its own, `auto` anywhere, and `file` for a Kubernetes projected token. */
export function sourceFitsPlatform(platform: Platform, sourceType: string): boolean {
  if (!platform.sourceType || sourceType === "auto" || sourceType === platform.sourceType) return true;
  return platform.id === "kubernetes" && sourceType === "file";
}
