/**
 * Reads the `oauth2` block of each provider and validates it once, at the edge.
 * Every zod issue becomes one line naming the provider and the field, so a user fixes all problems in one pass.
 */
import type { z } from "zod";
import { ConfigError, type ConfigIssue } from "../errors.js";
import { oauth2Schema, type OAuth2Config } from "./schema.js";

export type ParsedProvider = { providerId: string; ok: true; config: OAuth2Config } | { providerId: string; ok: false; error: ConfigError };

const ENV_REF = /\{env:([^}]+)\}/g;

/**
 * opencode substitutes `{env:VAR}` before plugins see the config; library and CLI callers read raw files,
 * so the same substitution is applied here (a no-op on already-substituted values).
 */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === "string") return value.replace(ENV_REF, (_, name: string) => env[name.trim()] ?? "");
  if (Array.isArray(value)) return value.map((v) => substituteEnv(v, env));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env)]));
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return ["oauth2", ...path.map(String)].join(".");
}

function toIssues(error: z.ZodError): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        issues.push({ path: formatPath([...issue.path, key]), message: `unknown field "${key}" (check its spelling against docs/configuration.md)` });
      }
      continue;
    }
    issues.push({ path: formatPath(issue.path), message: issue.message });
  }
  return issues;
}

/** Validate one provider's `oauth2` block. */
export function parseOAuth2Block(providerId: string, raw: unknown, env: NodeJS.ProcessEnv = process.env): ParsedProvider {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return { providerId, ok: false, error: new ConfigError(providerId, [{ path: "oauth2", message: "must be an object" }]) };
  }
  const result = oauth2Schema.safeParse(substituteEnv(raw, env));
  if (result.success) return { providerId, ok: true, config: result.data };
  return { providerId, ok: false, error: new ConfigError(providerId, toIssues(result.error)) };
}

interface ProviderEntry {
  options?: Record<string, unknown> & { oauth2?: unknown };
}

/** Every provider in an opencode config that carries `options.oauth2`, validated. Others are not ours and are skipped. */
export function parseProviders(config: { provider?: Record<string, ProviderEntry | undefined> }, env: NodeJS.ProcessEnv = process.env): ParsedProvider[] {
  const out: ParsedProvider[] = [];
  for (const [providerId, entry] of Object.entries(config.provider ?? {})) {
    const raw = entry?.options?.oauth2;
    if (raw === undefined) continue;
    out.push(parseOAuth2Block(providerId, raw, env));
  }
  return out;
}
