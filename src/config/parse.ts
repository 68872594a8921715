/**
 * Reads the `oauth2` block of each provider and validates it once, at the edge, together with the provider's
 * `options.baseURL` (where the access token goes) and the job's allow-lists (allow-lists.ts).
 * Every problem becomes one line naming the provider and the field, so a user fixes all of them in one pass.
 *
 * Values are taken as they are: `{env:VAR}` was already substituted, once, by opencode (or by the CLI's config
 * loader); substituting again would expand references that came from the environment (env-references.ts).
 */
import type * as z from "zod/mini";
import { ConfigError, type ConfigIssue } from "../errors.js";
import { insecureReason } from "../http/transport.js";
import { allowListIssues, readAllowLists } from "./allow-lists.js";
import { oauth2Schema } from "./schema.js";
import type { OAuth2Config } from "./types.js";

export type ParsedProvider = { providerId: string; ok: true; config: OAuth2Config } | { providerId: string; ok: false; error: ConfigError };

function formatPath(path: readonly PropertyKey[]): string {
  return ["oauth2", ...path.map(String)].join(".");
}

function toIssues(error: z.core.$ZodError): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        issues.push({
          path: formatPath([...issue.path, key]),
          message: `unknown field "${key}" (check its spelling against docs/configuration.md)`,
        });
      }
      continue;
    }
    issues.push({ path: formatPath(issue.path), message: issue.message });
  }
  return issues;
}

function blockIssues(raw: unknown, env: NodeJS.ProcessEnv): { config?: OAuth2Config; issues: ConfigIssue[] } {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { issues: [{ path: "oauth2", message: "must be an object" }] };
  const result = oauth2Schema.safeParse(raw);
  if (!result.success) return { issues: toIssues(result.error) };
  return { config: result.data, issues: allowListIssues(result.data, readAllowLists(env)) };
}

/** Validate one provider's `oauth2` block, and check it against the job's allow-lists in `env`. */
export function parseOAuth2Block(providerId: string, raw: unknown, env: NodeJS.ProcessEnv = process.env): ParsedProvider {
  const { config, issues } = blockIssues(raw, env);
  if (config && issues.length === 0) return { providerId, ok: true, config };
  return { providerId, ok: false, error: new ConfigError(providerId, issues) };
}

/**
 * The problem with options.baseURL, if any. The access token rides on every request to it: so no clear text, and
 * no silent default either (without baseURL the provider's SDK sends it to its own default host).
 */
function baseUrlIssue(baseURL: unknown, allowMissing: boolean): ConfigIssue | undefined {
  const path = "options.baseURL";
  if (baseURL === undefined || baseURL === "") {
    if (allowMissing) return undefined;
    return {
      path,
      message:
        "is required: the access token is sent to it. Set it to the provider's API URL, e.g. https://api.example.com/v1; " +
        "or, if the provider's SDK should choose the URL itself (its default host, or one it builds from other options), set oauth2.allowMissingBaseURL to true",
    };
  }
  if (typeof baseURL !== "string" || !URL.canParse(baseURL) || !/^https?:$/.test(new URL(baseURL).protocol)) {
    return { path, message: "must be an absolute http(s) URL, e.g. https://api.example.com/v1" };
  }
  const reason = insecureReason(new URL(baseURL));
  return reason ? { path, message: `${reason}; the access token would travel in clear text` } : undefined;
}

export interface ProviderEntry {
  options?: Record<string, unknown> & { oauth2?: unknown; baseURL?: unknown };
}

/** One provider: its `oauth2` block, its `options.baseURL` and the job's allow-lists, every problem in one error. */
export function parseProvider(providerId: string, entry: ProviderEntry, env: NodeJS.ProcessEnv = process.env): ParsedProvider {
  const { config, issues } = blockIssues(entry.options?.oauth2, env);
  const allowMissing =
    config?.allowMissingBaseURL ?? (entry.options?.oauth2 as { allowMissingBaseURL?: unknown } | undefined)?.allowMissingBaseURL === true;
  const baseUrl = baseUrlIssue(entry.options?.baseURL, allowMissing);
  const all = baseUrl ? [...issues, baseUrl] : issues;
  if (config && all.length === 0) return { providerId, ok: true, config };
  return { providerId, ok: false, error: new ConfigError(providerId, all) };
}

/** Every provider in an opencode config that carries `options.oauth2`, validated. Others are not ours and are skipped. */
export function parseProviders(
  config: { provider?: Record<string, ProviderEntry | undefined> },
  env: NodeJS.ProcessEnv = process.env,
): ParsedProvider[] {
  const out: ParsedProvider[] = [];
  for (const [providerId, entry] of Object.entries(config.provider ?? {})) {
    if (entry?.options?.oauth2 === undefined) continue;
    out.push(parseProvider(providerId, entry, env));
  }
  return out;
}
