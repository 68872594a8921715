/**
 * `doctor`: walks each managed provider's chain with the plugin's own modules (schema, source, checks, grant
 * client, grant) one step at a time, and records what it saw. Rendering lives in doctor-report.ts.
 * Nothing here keeps or returns a token: only claims, lifetimes, URLs and the IdP's words.
 */
import { decodeJwt, type JWTPayload } from "jose";
import { readAllowLists, type AllowLists } from "../config/allow-lists.js";
import { parseProvider, type ProviderEntry } from "../config/parse.js";
import type { OAuth2Config } from "../config/schema.js";
import { CiAuthError, GrantRefusedError } from "../errors.js";
import { reasonOf } from "../describe-failure.js";
import { checkExpectedClaims, type ClaimCheck } from "../expect-claims.js";
import { createGrantClient } from "../grant/client.js";
import { REFUSAL_HINTS } from "../grant/errors.js";
import { GRANT_TYPES, requestAccessToken } from "../grant/grant.js";
import { checkTokenAudience } from "../config/allow-lists.js";
import { checkSubjectToken, pickSummaryClaims } from "../subject-token/claims.js";
import { createSubjectTokenSource } from "../subject-token/sources.js";
import type { ConfigSource, OpencodeConfig } from "./config-files.js";
import { agentExposureWarning } from "./agent-exposure.js";
import { detectPlatform, sourceFitsPlatform, type Platform } from "./platform.js";

export type StepStatus = "ok" | "warn" | "fail" | "skip";

export interface DoctorStep {
  step: "config" | "subject-token" | "discovery" | "grant";
  status: StepStatus;
  /** One line: what happened. */
  title: string;
  /** Details, one per line (claims, URLs, the IdP's words). */
  lines: string[];
  /** What to do, on warn/fail. */
  fix?: string;
}

export interface ProviderReport {
  providerId: string;
  ok: boolean;
  sourceType?: string;
  flow?: string;
  steps: DoctorStep[];
  /** Non-secret claims of the subject token (SUMMARY_CLAIMS). */
  claims?: Record<string, unknown>;
  claimChecks?: ClaimCheck[];
}

export interface DoctorReport {
  ok: boolean;
  platform: Platform;
  sources: ConfigSource[];
  providers: ProviderReport[];
  /** Set when nothing could be checked (no config, no managed provider, unknown --provider). */
  problem?: string;
  /** The job's allow-lists (docs/security.md): where tokens may go, as the job decides. */
  allowLists: AllowLists;
  /** One line each: things that do not fail a provider but deserve attention (the agent's shell). */
  warnings: string[];
}

export interface DoctorInput {
  config: OpencodeConfig;
  sources: ConfigSource[];
  providerId?: string;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
}

const duration = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
};

const step = (s: DoctorStep): DoctorStep => s;

/** The cause a user should look at first, from the IdP's error and what the earlier steps showed. */
function likelyCause(err: GrantRefusedError, checks: readonly ClaimCheck[], advertised: boolean | undefined, config: OAuth2Config): string {
  const failing = checks.filter((c) => !c.ok).map((c) => c.claim);
  switch (err.error) {
    case "invalid_grant":
      return failing.length
        ? `the claims marked ✗ (${failing.join(", ")}) do not match the policy you expect; the IdP's trust policy probably refuses them for the same reason.`
        : "the IdP's trust policy does not accept this job's claims: compare the claims above with the policy's issuer, audience and subject/repository/ref conditions (add expectClaims to see the mismatch here).";
    case "unauthorized_client":
    case "unsupported_grant_type":
      return `the client "${config.clientId}" may not use ${config.authFlow} at this IdP${advertised === false ? " (and the IdP does not advertise the grant)" : ""}: enable the grant for the client.`;
    default:
      return REFUSAL_HINTS[err.error] ?? "see the IdP's error_description above.";
  }
}

async function checkProvider(providerId: string, entry: ProviderEntry, input: Required<Pick<DoctorInput, "env" | "now">> & DoctorInput, platform: Platform): Promise<ProviderReport> {
  const steps: DoctorStep[] = [];
  const report: ProviderReport = { providerId, ok: false, steps };
  const parsed = parseProvider(providerId, entry, input.env);
  if (!parsed.ok) {
    steps.push(step({ step: "config", status: "fail", title: "config invalid", lines: parsed.error.issues.map((i) => `${i.path}: ${i.message}`), fix: "correct the fields listed (docs/configuration.md)" }));
    return report;
  }
  const config = parsed.config;
  report.sourceType = config.subjectTokenSource.type;
  report.flow = config.authFlow;
  const platformMismatch = !sourceFitsPlatform(platform, config.subjectTokenSource.type);
  steps.push(
    step({
      step: "config",
      status: platformMismatch ? "warn" : "ok",
      title: `config valid: ${config.authFlow} with subject token from ${config.subjectTokenSource.type}`,
      lines: [],
      ...(platformMismatch ? { fix: `this job runs on ${platform.name}, but the provider reads its token from "${config.subjectTokenSource.type}"; "${platform.sourceType}" is the source for this platform` } : {}),
    }),
  );

  // 2. The subject token: minted with the plugin's own source, checked with its own checks.
  const source = createSubjectTokenSource(config.subjectTokenSource);
  // `auto` uses the same detection as the platform line: name what it picked.
  const sourceName = source.type === "auto" && platform.sourceType ? `auto (${platform.sourceType})` : source.type;
  const context = { providerId, env: input.env, fetch: input.fetch ?? globalThis.fetch, timeoutMs: config.timeoutSeconds * 1000 };
  let subjectToken: string | undefined;
  let checks: ClaimCheck[] = [];
  try {
    subjectToken = await source.getSubjectToken(context);
    let payload: JWTPayload | undefined;
    try {
      payload = decodeJwt(subjectToken);
    } catch {
      payload = undefined;
    }
    const lines: string[] = [];
    if (payload) {
      const summary = pickSummaryClaims(payload);
      report.claims = summary;
      const width = Math.max(...Object.keys(summary).map((k) => k.length));
      for (const [claim, value] of Object.entries(summary)) {
        const text = Array.isArray(value) ? value.join(", ") : String(value);
        let note = "";
        if (claim === "aud" && source.expectedAudience !== undefined) {
          const auds = Array.isArray(value) ? value.map(String) : [String(value)];
          note = auds.includes(source.expectedAudience) ? "  ✓ configured audience" : `  ✗ expected ${source.expectedAudience}`;
        }
        lines.push(`${claim.padEnd(width)}  ${text}${note}`);
      }
      if (config.expectClaims) checks = checkExpectedClaims(payload, config.expectClaims);
      report.claimChecks = checks;
    }
    const left = typeof payload?.exp === "number" ? payload.exp * 1000 - input.now() : undefined;
    try {
      checkSubjectToken(subjectToken, { source: source.type, providerId, expectedAudience: source.expectedAudience, now: input.now() });
      const auds = payload?.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      const refused = checkTokenAudience(auds, readAllowLists(input.env));
      if (refused) throw new Error(refused);
      const mismatch = checks.filter((c) => !c.ok);
      steps.push(
        step({
          step: "subject-token",
          status: mismatch.length ? "fail" : "ok",
          title: `subject token from ${sourceName}${left === undefined ? "" : `, ${duration(left)} left`}`,
          lines,
          ...(mismatch.length ? { fix: `the claims marked ✗ do not match oauth2.expectClaims (${mismatch.map((c) => c.claim).join(", ")}): the plugin will not send this token` } : {}),
        }),
      );
      if (mismatch.length) subjectToken = undefined;
    } catch (err) {
      const fix = err instanceof CiAuthError ? err.reason : (err as Error).message;
      steps.push(step({ step: "subject-token", status: "fail", title: `subject token from ${sourceName} fails the local checks`, lines, fix }));
      subjectToken = undefined;
    }
  } catch (err) {
    steps.push(step({ step: "subject-token", status: "fail", title: `no subject token from ${sourceName}`, lines: [], fix: reasonOf(err) }));
  }

  // 3. Discovery (or the configured endpoint), and whether the IdP advertises the grant.
  let configuration: Awaited<ReturnType<typeof createGrantClient>> | undefined;
  let advertised: boolean | undefined;
  try {
    configuration = await createGrantClient(providerId, config, { fetch: input.fetch, allowLists: readAllowLists(input.env) });
    const meta = configuration.serverMetadata();
    const grantType = GRANT_TYPES[config.authFlow];
    const supported = Array.isArray(meta.grant_types_supported) ? meta.grant_types_supported : undefined;
    advertised = supported ? supported.includes(grantType) : undefined;
    const lines = [`issuer          ${meta.issuer}`, `token endpoint  ${meta.token_endpoint ?? "(none)"}`];
    lines.push(
      config.tokenEndpoint
        ? "grant types     (not checked: tokenEndpoint is set, discovery skipped)"
        : `grant types     ${advertised === undefined ? "not advertised (the IdP publishes no grant_types_supported)" : advertised ? `advertises ${grantType}` : `does NOT advertise ${grantType}`}`,
    );
    steps.push(
      step({
        step: "discovery",
        status: advertised === false ? "warn" : "ok",
        title: config.tokenEndpoint ? "token endpoint configured (discovery skipped)" : "discovery reached",
        lines,
        ...(advertised === false ? { fix: `enable the ${config.authFlow} grant at the IdP (it lists ${supported?.length ?? 0} other grant types)` } : {}),
      }),
    );
  } catch (err) {
    // Building the grant client also reads the private_key_jwt key file: name that, not discovery, when it failed.
    const title = err instanceof CiAuthError && err.step === "config" ? "grant client not built (configuration)" : "discovery failed";
    steps.push(step({ step: "discovery", status: "fail", title, lines: [], fix: reasonOf(err) }));
  }

  // 4. The grant, once, without retries: doctor reports what happens now.
  if (!subjectToken || !configuration) {
    steps.push(step({ step: "grant", status: "skip", title: "grant not attempted (an earlier step failed)", lines: [] }));
  } else {
    try {
      const token = await requestAccessToken(configuration, config, subjectToken, { providerId, now: input.now });
      steps.push(
        step({
          step: "grant",
          status: "ok",
          title: `grant succeeded: access token valid for ${duration(token.expiresAt - input.now())}`,
          lines: [`expiry from   ${token.expirySource}`, `scope         ${token.scope ?? "(none returned)"}`],
        }),
      );
    } catch (err) {
      if (err instanceof GrantRefusedError) {
        steps.push(
          step({
            step: "grant",
            status: "fail",
            title: `grant refused by the IdP (HTTP ${err.status ?? "?"})`,
            lines: [`error              ${err.error}`, `error_description  ${err.errorDescription ?? "(none)"}`],
            fix: `likely cause: ${likelyCause(err, checks, advertised, config)}`,
          }),
        );
      } else {
        steps.push(step({ step: "grant", status: "fail", title: "grant failed", lines: [], fix: err instanceof CiAuthError ? err.reason : reasonOf(err) }));
      }
    }
  }
  report.ok = steps.every((s) => s.status === "ok" || s.status === "warn");
  return report;
}

export async function runDoctor(input: DoctorInput): Promise<DoctorReport> {
  const env = input.env ?? process.env;
  const now = input.now ?? Date.now;
  const platform = detectPlatform(env);
  const providers = Object.entries(input.config.provider ?? {}).filter(([, entry]) => entry?.options?.oauth2 !== undefined);
  const credentialEnv = providers.flatMap(([, entry]) => {
    const parsed = parseProvider("", entry as ProviderEntry, {});
    return parsed.ok ? createSubjectTokenSource(parsed.config.subjectTokenSource).credentialEnv : [];
  });
  const exposure = agentExposureWarning(input.config, env, credentialEnv);
  const base = { platform, sources: input.sources, providers: [] as ProviderReport[], allowLists: readAllowLists(env), warnings: exposure ? [exposure] : [] };
  if (input.sources.length === 0) return { ...base, ok: false, problem: "no opencode config found (looked for OPENCODE_CONFIG, opencode.json(c) from the cwd up, OPENCODE_CONFIG_DIR and the global config)" };
  const selected = input.providerId ? providers.filter(([id]) => id === input.providerId) : providers;
  if (selected.length === 0) {
    const known = providers.map(([id]) => id).join(", ") || "none";
    return {
      ...base,
      ok: false,
      problem: input.providerId ? `provider "${input.providerId}" has no options.oauth2 in this config (providers with oauth2: ${known})` : "no provider in this config has options.oauth2",
    };
  }
  const reports: ProviderReport[] = [];
  for (const [id, entry] of selected) reports.push(await checkProvider(id, entry as ProviderEntry, { ...input, env, now }, platform));
  return { ...base, providers: reports, ok: reports.every((r) => r.ok) };
}
