/**
 * `doctor`: the plugin's chain for each managed provider, one step at a time (inspection.ts), plus what only a
 * diagnosis adds: the platform this job runs on, whether the source fits it, the job's allow-lists, the agent's
 * exposure, and the likely cause of a refusal. Rendering lives in doctor-report.ts.
 * Nothing here keeps or returns a token: only claims, lifetimes, URLs and the IdP's words.
 */
import { readAllowLists, type AllowLists } from "../config/allow-lists.js";
import { parseProvider, type ProviderEntry } from "../config/parse.js";
import type { OAuth2Config } from "../config/schema.js";
import type { GrantRefusedError } from "../errors.js";
import type { ClaimCheck } from "../expect-claims.js";
import { REFUSAL_HINTS } from "../grant/errors.js";
import { inspectProvider, type InspectionStatus, type InspectionStep } from "../inspection.js";
import { createSubjectTokenSource } from "../subject-token/sources.js";
import { agentExposureWarning } from "./agent-exposure.js";
import type { ConfigSource, OpencodeConfig } from "./config-files.js";
import { detectPlatform, sourceFitsPlatform, type Platform } from "./platform.js";

export type StepStatus = InspectionStatus;
export type DoctorStep = InspectionStep;

export interface ProviderReport {
  providerId: string;
  ok: boolean;
  sourceType?: string;
  flow?: string;
  steps: DoctorStep[];
  /** Non-secret claims of the subject token (the summary). */
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

async function checkProvider(
  providerId: string,
  entry: ProviderEntry,
  input: DoctorInput & { env: NodeJS.ProcessEnv },
  platform: Platform,
): Promise<ProviderReport> {
  const inspection = await inspectProvider(providerId, entry, input);
  const { config } = inspection;
  const steps = inspection.steps.map((s) => ({ ...s }));
  if (config) {
    // A source that does not fit the platform this job runs on: a warning, the chain may still work.
    const type = config.subjectTokenSource.type;
    const configStep = steps.find((s) => s.step === "config");
    if (configStep && !sourceFitsPlatform(platform, type)) {
      configStep.status = "warn";
      configStep.fix = `this job runs on ${platform.name}, but the provider reads its token from "${type}"; "${platform.sourceType}" is the source for this platform`;
    }
    const grantStep = steps.find((s) => s.step === "grant");
    if (grantStep && inspection.refusal)
      grantStep.fix = `likely cause: ${likelyCause(inspection.refusal, inspection.claimChecks ?? [], inspection.advertised, config)}`;
  }
  return {
    providerId,
    ok: inspection.ok,
    ...(config ? { sourceType: config.subjectTokenSource.type, flow: config.authFlow } : {}),
    steps,
    ...(inspection.claims ? { claims: withoutExp(inspection.claims) } : {}),
    ...(inspection.claimChecks ? { claimChecks: inspection.claimChecks } : {}),
  };
}

function withoutExp(claims: Record<string, unknown>): Record<string, unknown> {
  const { exp: _exp, ...rest } = claims;
  return rest;
}

export async function runDoctor(input: DoctorInput): Promise<DoctorReport> {
  const env = input.env ?? process.env;
  const platform = detectPlatform(env);
  const providers = Object.entries(input.config.provider ?? {}).filter(([, entry]) => entry?.options?.oauth2 !== undefined);
  const credentialEnv = providers.flatMap(([, entry]) => {
    const parsed = parseProvider("", entry as ProviderEntry, {});
    return parsed.ok ? createSubjectTokenSource(parsed.config.subjectTokenSource).credentialEnv : [];
  });
  const exposure = agentExposureWarning(input.config, env, credentialEnv);
  const base = {
    platform,
    sources: input.sources,
    providers: [] as ProviderReport[],
    allowLists: readAllowLists(env),
    warnings: exposure ? [exposure] : [],
  };
  if (input.sources.length === 0)
    return {
      ...base,
      ok: false,
      problem:
        "no opencode config found (looked for OPENCODE_CONFIG, opencode.json(c) from the cwd up, OPENCODE_CONFIG_DIR and the global config)",
    };
  const selected = input.providerId ? providers.filter(([id]) => id === input.providerId) : providers;
  if (selected.length === 0) {
    const known = providers.map(([id]) => id).join(", ") || "none";
    return {
      ...base,
      ok: false,
      problem: input.providerId
        ? `provider "${input.providerId}" has no options.oauth2 in this config (providers with oauth2: ${known})`
        : "no provider in this config has options.oauth2",
    };
  }
  const reports: ProviderReport[] = [];
  for (const [id, entry] of selected) reports.push(await checkProvider(id, entry as ProviderEntry, { ...input, env }, platform));
  return { ...base, providers: reports, ok: reports.every((r) => r.ok) };
}
