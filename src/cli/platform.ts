/** Which CI platform this process runs on, from its environment, and the source a config should use there. */
import { LOOKED_FOR, detectPlatformFromEnv } from "../subject-token/sources.js";

export interface Platform {
  /** The platform's source type, or "none". */
  id: string;
  name: string;
  /** Non-secret facts worth showing (repository, ref, run). */
  details: Record<string, string>;
  /** The `subjectTokenSource.type` that fits this platform. */
  sourceType: string | undefined;
  /** Other source types that fit it too. */
  alsoFits: readonly string[];
}

const pick = (env: NodeJS.ProcessEnv, names: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(names).flatMap(([label, name]) => (env[name] ? [[label, env[name] as string]] : [])));

export function detectPlatform(env: NodeJS.ProcessEnv = process.env): Platform {
  const found = detectPlatformFromEnv(env);
  if (!found)
    return { id: "none", name: `no CI platform detected (looked for ${LOOKED_FOR})`, details: {}, sourceType: undefined, alsoFits: [] };
  return { id: found.id, name: found.name, details: pick(env, found.details), sourceType: found.id, alsoFits: found.alsoFits ?? [] };
}

/** Whether a source type suits the platform: its own, `auto` anywhere, and those the platform declares (alsoFits). */
export function sourceFitsPlatform(platform: Platform, sourceType: string): boolean {
  if (!platform.sourceType || sourceType === "auto" || sourceType === platform.sourceType) return true;
  return platform.alsoFits.includes(sourceType);
}
