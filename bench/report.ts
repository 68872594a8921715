/** Turns one run's figures into the printed table, or the `--json` object. Prints nothing itself. */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import type { GrantLatencyResult, LatencySummary } from "./grant-latency.js";
import type { HotPathResult } from "./hot-path.js";
import type { ImportTimeResult } from "./import-time.js";
import type { BurstResult } from "./single-flight.js";
import type { WholeRunResult } from "./whole-run.js";

export interface BenchResults {
  hotPath: HotPathResult;
  singleFlight: BurstResult[];
  importTime: ImportTimeResult;
  grantLatency: GrantLatencyResult;
  /** Figure 5; undefined with --no-whole-run. */
  wholeRun: WholeRunResult | undefined;
  durationMs: number;
}

export function machine() {
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "unknown",
  };
}

/** The commit measured, and whether the working tree differed from it (the bench builds the working tree). */
export function sourceRevision(): string {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = git("status", "--porcelain", "--", "src", "package.json") !== "";
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? "+uncommitted src changes" : ""}`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

export function allPass(results: BenchResults): boolean {
  return results.hotPath.pass && results.singleFlight.every((b) => b.pass) && results.importTime.pass && (results.wholeRun?.pass ?? true);
}

export function toJson(results: BenchResults, date: Date): string {
  return JSON.stringify(
    { date: date.toISOString(), machine: machine(), source: sourceRevision(), pass: allPass(results), ...results },
    null,
    2,
  );
}

const CALLERS_GOT = {
  new_token: "the new token",
  current_token: "the current token while it was refreshed",
  mixed_or_invalid: "DIFFERENT or EXPIRED tokens",
} as const;

const verdict = (pass: boolean, rule: string): string => `${pass ? "PASS" : "FAIL"} (${rule})`;
const fixed = (n: number, digits: number): string => n.toFixed(digits);
const latency = (s: LatencySummary): string => `median ${fixed(s.medianMs, 2)} ms · p95 ${fixed(s.p95Ms, 2)} ms`;

function wholeRunRows(whole: WholeRunResult | undefined): Array<[string, string, string]> {
  if (!whole) return [["5 whole opencode run", "skipped (--no-whole-run)", ""]];
  return whole.variants.map((v, i): [string, string, string] => [
    i === 0 ? `5 opencode ${whole.opencodeVersion} run, fastest of ${whole.rounds}: ${v.label}` : `  … ${v.label}`,
    `${fixed(v.fastestMs / 1000, 2)} s · ${fixed(v.ratioToStaticKey, 3)}× the static key · median ${fixed(v.medianMs / 1000, 2)} s (${fixed(v.medianRatioToStaticKey, 3)}×)`,
    v.id === "this-prepared" ? verdict(whole.pass, `≤ ${whole.targetRatio}×`) : "",
  ]);
}

export function toTable(results: BenchResults, date: Date): string {
  const { hotPath: hot, singleFlight, importTime: imp, grantLatency: lat } = results;
  const m = machine();
  const rows: Array<[string, string, string]> = [
    [
      `1 chat.headers, cached (median of ${hot.rounds} × ${hot.callsPerRound} calls)`,
      `${fixed(hot.usPerCall, 3)} µs/call · ${fixed(hot.ratioToNoopAsync, 1)}× a no-op async call (${fixed(hot.baselineUsPerCall, 3)} µs)` +
        (hot.grantsDuringTiming > 0 ? ` · NOT the cached path: ${hot.grantsDuringTiming} grants while timed` : ""),
      verdict(hot.pass, `< ${hot.targetUs} µs`),
    ],
    ...singleFlight.map((b, i): [string, string, string] => [
      i === 0
        ? `2 grants for ${b.callers} concurrent getToken(), ${b.moment.replace("_", " ")}`
        : `  … ${b.moment.replace("_", " ")} (token still valid)`,
      `${b.idpGrants} · callers got ${CALLERS_GOT[b.callersGot]}${b.replaced ? "" : " · cache NOT replaced"}` +
        (b.grantAttempts === b.idpGrants ? "" : ` · ${b.grantAttempts} attempted`),
      verdict(b.pass, "= 1"),
    ]),
    [
      `3 import dist/index.js, fresh process (fastest of ${imp.runs})`,
      `${fixed(imp.pluginMs, 1)} ms · ${fixed(imp.ratioToEmpty, 1)}× an empty module (${fixed(imp.emptyMs, 2)} ms) · median ${fixed(imp.pluginMedianMs, 1)} ms (empty ${fixed(imp.emptyMedianMs, 2)} ms) · CPU ${fixed(imp.pluginCpuMs, 1)} ms (empty ${fixed(imp.emptyCpuMs, 1)} ms)`,
      verdict(imp.pass, `≤ ${imp.targetRatio}×, ${imp.goalMs} ms where set`),
    ],
    [
      "  … start: import, plugin, config + shell.env hooks",
      `${fixed(imp.startMs, 1)} ms · ${fixed(imp.startRatioToEmpty, 1)}× an empty module · median ${fixed(imp.startMedianMs, 1)} ms · CPU ${fixed(imp.startCpuMs, 1)} ms`,
      "",
    ],
    [`4 fresh token, loopback round trip (n=${lat.samples})`, latency(lat.roundTrip), ""],
    ["  ├ subject token (CI token service)", latency(lat.subjectToken), ""],
    ["  └ grant (IdP token endpoint)", latency(lat.grant), ""],
    ...wholeRunRows(results.wholeRun),
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const lines = [
    `opencode-ci-auth bench · ${date.toISOString()} · ${sourceRevision()} · Node ${m.node} · ${m.platform} · ${m.cores} cores (${m.cpu})`,
    "",
    ...rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd()),
    "",
    ...(results.wholeRun
      ? [`(the prepared config dir: one opencode-ci-auth prepare, ${fixed(results.wholeRun.prepareMs / 1000, 1)} s, not in any sample)`, ""]
      : []),
    `${allPass(results) ? "all checks PASS" : "some checks FAIL"} · whole run ${fixed(results.durationMs / 1000, 1)} s`,
  ];
  return lines.join("\n");
}
