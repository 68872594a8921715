/**
 * The chain, one step at a time, for diagnosis: config, subject token (its claims and every rule's problem),
 * expected claims, discovery, grant. Each step runs the plugin's own code (parseProvider, the TokenProvider's
 * source, rules, grant client and grant), so doctor can never call ready what the plugin refuses, and a rule added
 * to the chain (subject-token-rules.ts) shows up here without a change.
 *
 * What it records is safe to print: claims, lifetimes, URLs and the IdP's words; never a token.
 */
import type { AccessToken } from "./access-token.js";
import { googlePrincipalOf, googleProviderOf } from "./config/cloud-services.js";
import { parseProvider, type ProviderEntry } from "./config/parse.js";
import type { OAuth2Config } from "./config/schema.js";
import { reasonOf } from "./describe-failure.js";
import { CiAuthError, GrantRefusedError } from "./errors.js";
import type { ClaimCheck } from "./expect-claims.js";
import { GRANT_TYPES } from "./grant/grant.js";
import { createLogger } from "./log.js";
import { detectPlatformFromEnv, notesOnToken } from "./subject-token/sources.js";
import { TokenProvider } from "./token-provider.js";

export type InspectionStatus = "ok" | "warn" | "fail" | "skip";
export type InspectionStepName = "config" | "subject-token" | "expected-claims" | "identity" | "discovery" | "grant" | "impersonation";

export interface InspectionStep {
  step: InspectionStepName;
  status: InspectionStatus;
  /** One line: what happened. */
  title: string;
  /** Details, one per line (claims, URLs, the IdP's words). */
  lines: string[];
  /** What to do, on warn or fail. */
  fix?: string;
}

export interface ProviderInspection {
  providerId: string;
  /** No step failed (warnings allowed). */
  ok: boolean;
  steps: InspectionStep[];
  /** Set once the config is valid. */
  config?: OAuth2Config;
  /** Non-secret claims of the subject token. */
  claims?: Record<string, unknown>;
  claimChecks?: ClaimCheck[];
  /** Whether the IdP advertises the grant type (undefined: not said, or discovery skipped). */
  advertised?: boolean;
  /** The IdP's refusal, when the grant was refused. */
  refusal?: GrantRefusedError;
}

export interface InspectOptions {
  env: NodeJS.ProcessEnv;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
}

/** "4m 59s", "12s". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function claimLines(claims: Record<string, unknown>, expectedAudience: string | undefined): string[] {
  // The lifetime left is in the step's title; `exp` is not repeated here.
  const shown = Object.entries(claims).filter(([claim]) => claim !== "exp");
  const width = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([claim, value]) => {
    const text = Array.isArray(value) ? value.join(", ") : String(value);
    let note = "";
    if (claim === "aud" && expectedAudience !== undefined) {
      const auds = Array.isArray(value) ? value.map(String) : [String(value)];
      note = auds.includes(expectedAudience) ? "  ✓ configured audience" : `  ✗ expected ${expectedAudience}`;
    }
    return `${claim.padEnd(width)}  ${text}${note}`;
  });
}

/** Inspect one provider of an opencode config: its entry (`options.oauth2`, `options.baseURL`) and the job's env. */
export async function inspectProvider(providerId: string, entry: ProviderEntry, options: InspectOptions): Promise<ProviderInspection> {
  const now = options.now ?? Date.now;
  const steps: InspectionStep[] = [];
  const result: ProviderInspection = { providerId, ok: false, steps };
  const done = () => ((result.ok = steps.every((s) => s.status === "ok" || s.status === "warn")), result);

  // 1. The config: the block, options.baseURL and the job's allow-lists, as the plugin parses them.
  const parsed = parseProvider(providerId, entry, options.env);
  if (!parsed.ok) {
    steps.push({
      step: "config",
      status: "fail",
      title: "config invalid",
      lines: parsed.error.issues.map((i) => `${i.path}: ${i.message}`),
      fix: "correct the fields listed (docs/configuration.md)",
    });
    return done();
  }
  const config = parsed.config;
  result.config = config;
  steps.push({
    step: "config",
    status: "ok",
    title: `config valid: ${config.authFlow} with subject token from ${config.subjectTokenSource.type}`,
    lines: [],
  });

  const tokens = new TokenProvider(providerId, config, {
    env: options.env,
    fetch: options.fetch,
    now,
    logger: createLogger({ level: "silent" }),
  });
  // `auto` picks its platform the same way the platform line does: name what it picked.
  const detected = tokens.source.type === "auto" ? detectPlatformFromEnv(options.env) : undefined;
  const sourceName = detected ? `auto (${detected.id})` : tokens.source.type;

  // 2. The subject token, minted by the plugin's source and judged by every rule of the chain.
  let subjectToken: string | undefined;
  let presented: Record<string, unknown> | undefined;
  try {
    subjectToken = await tokens.mintSubjectToken();
  } catch (err) {
    steps.push({ step: "subject-token", status: "fail", title: `no subject token from ${sourceName}`, lines: [], fix: reasonOf(err) });
  }
  if (subjectToken !== undefined) {
    const examined = tokens.examineSubjectToken(subjectToken);
    result.claims = examined.claims;
    result.claimChecks = examined.claimChecks;
    // The expectClaims problem is its own step, below.
    const problems = examined.problems.filter((p) => p.code !== "ERR_SUBJECT_TOKEN_CLAIMS");
    const lines = examined.claims ? claimLines(examined.claims, tokens.source.expectedAudience) : [];
    // What the platforms say about the token (GitHub: which form of `sub` the IdP must match).
    if (examined.payload) lines.push(...notesOnToken(examined.payload));
    const left = examined.expiresAt === undefined ? "" : `, ${duration(examined.expiresAt - now())} left`;
    if (problems.length === 0) {
      steps.push({ step: "subject-token", status: "ok", title: `subject token from ${sourceName}${left}`, lines });
    } else {
      // Every rule's problem is listed; the first is the fix, as the plugin would report it.
      const more = problems.slice(1).map((p) => `✗ ${(p as CiAuthError).reason}`);
      steps.push({
        step: "subject-token",
        status: "fail",
        title: `subject token from ${sourceName} fails the local checks`,
        lines: [...lines, ...more],
        fix: reasonOf(problems[0]),
      });
    }

    // 3. The claims the user expects the IdP's policy to require.
    const checks = examined.claimChecks;
    if (checks?.length) {
      const mismatch = checks.filter((c) => !c.ok);
      steps.push({
        step: "expected-claims",
        status: mismatch.length ? "fail" : "ok",
        title: mismatch.length
          ? `expectClaims: ${mismatch.length} of ${checks.length} do not match`
          : `expectClaims: all ${checks.length} match`,
        lines: [],
        ...(mismatch.length
          ? {
              fix: `the claims marked ✗ do not match oauth2.expectClaims (${mismatch.map((c) => c.claim).join(", ")}): the plugin will not send this token`,
            }
          : {}),
      });
    }
    // 3b. The clouds trust a federated identity registered in advance: name exactly what this job presents.
    const identity = examined.claims ? federatedIdentity(config, examined.claims) : undefined;
    if (identity) steps.push(identity);
    presented = examined.claims;
    if (examined.problems.length > 0) subjectToken = undefined;
  }

  // 4. Discovery (or the configured endpoint), and whether the IdP advertises the grant.
  let discovered = false;
  try {
    const meta = (await tokens.client()).serverMetadata();
    discovered = true;
    const grantType = GRANT_TYPES[config.authFlow];
    const supported = Array.isArray(meta.grant_types_supported) ? meta.grant_types_supported : undefined;
    const advertised = config.tokenEndpoint || !supported ? undefined : supported.includes(grantType);
    if (advertised !== undefined) result.advertised = advertised;
    const lines = [`issuer          ${meta.issuer}`, `token endpoint  ${meta.token_endpoint ?? "(none)"}`];
    lines.push(
      config.tokenEndpoint
        ? "grant types     (not checked: tokenEndpoint is set, discovery skipped)"
        : `grant types     ${advertised === undefined ? "not advertised (the IdP publishes no grant_types_supported)" : advertised ? `advertises ${grantType}` : `does NOT advertise ${grantType}`}`,
    );
    steps.push({
      step: "discovery",
      status: advertised === false ? "warn" : "ok",
      title: config.tokenEndpoint ? "token endpoint configured (discovery skipped)" : "discovery reached",
      lines,
      ...(advertised === false
        ? { fix: `enable the ${config.authFlow} grant at the IdP (it lists ${supported?.length ?? 0} other grant types)` }
        : {}),
    });
  } catch (err) {
    // Building the grant client also reads the private_key_jwt key file: name that, not discovery, when it failed.
    const title = err instanceof CiAuthError && err.step === "config" ? "grant client not built (configuration)" : "discovery failed";
    steps.push({ step: "discovery", status: "fail", title, lines: [], fix: reasonOf(err) });
  }

  // 5. The grant, once, without retries: what happens now.
  if (subjectToken === undefined || !discovered) {
    steps.push({ step: "grant", status: "skip", title: "grant not attempted (an earlier step failed)", lines: [] });
    return done();
  }
  let granted: AccessToken;
  try {
    granted = await tokens.requestWith(subjectToken, presented);
    steps.push({
      step: "grant",
      status: "ok",
      title: `grant succeeded: access token valid for ${duration(granted.expiresAt - now())}`,
      lines: [`expiry from   ${granted.expirySource}`, `scope         ${granted.scope ?? "(none returned)"}`],
    });
  } catch (err) {
    if (err instanceof GrantRefusedError) {
      result.refusal = err;
      steps.push({
        step: "grant",
        status: "fail",
        title: `grant refused by the IdP (HTTP ${err.status ?? "?"})`,
        lines: [`error              ${err.error}`, `error_description  ${err.errorDescription ?? "(none)"}`],
        fix: err.reason,
      });
    } else {
      steps.push({ step: "grant", status: "fail", title: "grant failed", lines: [], fix: reasonOf(err) });
    }
    return done();
  }

  // 6. Google: the service account's token, bought with the federated one.
  const impersonation = config.serviceAccountImpersonation;
  if (impersonation) {
    try {
      const token = await tokens.impersonate(granted, presented);
      steps.push({
        step: "impersonation",
        status: "ok",
        title: `service account token for ${impersonation.email}, valid for ${duration(token.expiresAt - now())}`,
        lines: [`scope         ${token.scope ?? "(none)"}`],
      });
    } catch (err) {
      steps.push({
        step: "impersonation",
        status: "fail",
        title: `no token for the service account ${impersonation.email}`,
        lines: [],
        fix: reasonOf(err),
      });
    }
  }
  return done();
}

/**
 * The federated identity a cloud must trust, as this job presents it: for a federated client assertion (Entra), the
 * credential to register on the app; for Google, the pool principal that roles are granted to.
 */
function federatedIdentity(config: OAuth2Config, claims: Record<string, unknown>): InspectionStep | undefined {
  const text = (name: string) => {
    const value = claims[name];
    return Array.isArray(value) ? value.map(String).join(", ") : value === undefined ? "(missing)" : String(value);
  };
  if (config.authFlow === "client_credentials") {
    return {
      step: "identity",
      status: "ok",
      title: `federated identity to register on the app ${config.clientId ?? ""}`.trimEnd(),
      lines: [`issuer    ${text("iss")}`, `subject   ${text("sub")}`, `audience  ${text("aud")}`],
    };
  }
  const provider = googleProviderOf(config.tokenExchangeAudience);
  if (config.authFlow === "token_exchange" && provider) {
    const principal = typeof claims.sub === "string" ? googlePrincipalOf(provider, claims.sub) : undefined;
    return {
      step: "identity",
      status: "ok",
      title: "federated identity in the Google workload identity pool",
      lines: [
        `provider   ${provider}`,
        `issuer     ${text("iss")}`,
        `audience   ${text("aud")}`,
        `principal  ${principal ?? "(no sub claim)"}`,
      ],
    };
  }
  return undefined;
}
