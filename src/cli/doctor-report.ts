/** Renders a DoctorReport: plain text for the terminal, Markdown for $GITHUB_STEP_SUMMARY, JSON for machines. */
import { formatClaimTable } from "../expect-claims.js";
import type { AllowLists } from "../config/allow-lists.js";
import type { DoctorReport, StepStatus } from "./doctor.js";

const MARK: Record<StepStatus, string> = { ok: "✓", warn: "!", fail: "✗", skip: "-" };

/** The job's allow-lists on one line, or what their absence means. */
function allowListsLine(lists: AllowLists): string {
  const parts = Object.values(lists).map((list) => `${list.variable}=${list.values.join(",")}`);
  return parts.length ? parts.join(" · ") : "no OPENCODE_CI_AUTH_ALLOWED_* list set: the config alone decides where tokens go";
}

export function renderText(report: DoctorReport): string {
  const out: string[] = ["opencode-ci-auth doctor", ""];
  if (report.sources.length === 0) out.push("config    (none found)");
  report.sources.forEach((s, i) =>
    out.push(`${i === 0 ? "config   " : "         "} ${s.path} (${s.origin})${s.error ? `  ✗ ${s.error}` : ""}`),
  );
  const details = Object.entries(report.platform.details).map(([k, v]) => `${k} ${v}`);
  out.push(`platform  ${[report.platform.name, ...details].join(" · ")}`);
  out.push(`allowed   ${allowListsLine(report.allowLists)}`);
  for (const warning of report.warnings) out.push(`! ${warning}`);
  if (report.problem) out.push("", `✗ ${report.problem}`);
  for (const p of report.providers) {
    out.push("", `provider ${p.providerId}`);
    for (const s of p.steps) {
      out.push(`  ${MARK[s.status]} ${s.title}`);
      for (const line of s.lines) out.push(`      ${line}`);
      if (s.step === "expected-claims" && p.claimChecks?.length) out.push(formatClaimTable(p.claimChecks, "      "));
      if (s.fix) out.push(`    → ${s.fix}`);
    }
  }
  const failing = report.providers.filter((p) => !p.ok).length;
  out.push(
    "",
    report.ok
      ? `result: ${report.providers.length} provider(s) ready`
      : failing
        ? `result: ${failing} provider(s) failing`
        : "result: nothing checked (see above)",
  );
  return `${out.join("\n")}\n`;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, "<br>");

export function renderMarkdown(report: DoctorReport): string {
  const out = [`### opencode-ci-auth doctor: ${report.ok ? "✅ ready" : "❌ failing"}`, ""];
  for (const warning of report.warnings) out.push(`⚠️ ${cell(warning)}`, "");
  if (report.problem) out.push(`❌ ${cell(report.problem)}`, "");
  for (const p of report.providers) {
    out.push(`#### provider \`${p.providerId}\``, "", "| step | | detail |", "|---|---|---|");
    for (const s of p.steps) {
      const detail = [s.title, ...s.lines.map((l) => `\`${l}\``), ...(s.fix ? [`**fix:** ${s.fix}`] : [])].join("<br>");
      out.push(`| ${s.step} | ${MARK[s.status]} | ${cell(detail)} |`);
    }
    if (p.claimChecks?.length) {
      out.push("", "| claim | value | expected |", "|---|---|---|");
      for (const c of p.claimChecks)
        out.push(`| ${cell(c.claim)} | ${cell(c.actual ?? "(missing)")} | ${c.ok ? "✓" : "✗"} ${cell(c.expected.join(" | "))} |`);
    }
    out.push("");
  }
  return `${out.join("\n")}\n`;
}

export function renderJson(report: DoctorReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
