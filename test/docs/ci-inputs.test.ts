/**
 * Every input and output of the project's CI entry points is documented, with its default, and nothing else is:
 * - the setup action (.github/actions/setup/action.yml) in its README's Inputs and Outputs tables;
 * - the reusable workflow (.github/workflows/opencode-run.yml) in the README's section on it;
 * - the GitLab component (templates/opencode-run.yml) in docs/gitlab-ci.md's table of its inputs (it has no outputs).
 * A doc table of inputs has a first column headed "input" and a "default" column: the default as a code span,
 * "required" for an input without one, "*(empty)*" for an empty default. A table of outputs is headed "output".
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

import { codeSpans, column, section, tables, type Table } from "./support/markdown.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (path: string) => readFile(join(ROOT, path), "utf8");

interface Declared {
  inputs: Record<string, { required?: boolean; default?: unknown } | null>;
  outputs: string[];
}

interface EntryPoint {
  name: string;
  file: string;
  declared(): Promise<Declared>;
  doc: string;
  /** The heading of the doc section that holds the tables. */
  inputsUnder: RegExp;
  outputsUnder: RegExp;
}

const ENTRY_POINTS: EntryPoint[] = [
  {
    name: "setup action",
    file: ".github/actions/setup/action.yml",
    async declared() {
      const action = parse(await read(this.file)) as { inputs: Declared["inputs"]; outputs?: Record<string, unknown> };
      return { inputs: action.inputs, outputs: Object.keys(action.outputs ?? {}) };
    },
    doc: ".github/actions/setup/README.md",
    inputsUnder: /^## Inputs$/,
    outputsUnder: /^## Outputs$/,
  },
  {
    name: "reusable workflow",
    file: ".github/workflows/opencode-run.yml",
    async declared() {
      const workflow = parse(await read(this.file)) as {
        on: { workflow_call: { inputs: Declared["inputs"]; outputs?: Record<string, unknown> } };
      };
      const call = workflow.on.workflow_call;
      return { inputs: call.inputs, outputs: Object.keys(call.outputs ?? {}) };
    },
    doc: "README.md",
    inputsUnder: /^### The reusable workflow's inputs and output$/,
    outputsUnder: /^### The reusable workflow's inputs and output$/,
  },
  {
    name: "GitLab component",
    file: "templates/opencode-run.yml",
    async declared() {
      const header = parseAllDocuments(await read(this.file))[0]?.toJS() as { spec: { inputs: Declared["inputs"] } };
      // A component input without a default is required (GitLab's spec:inputs).
      const inputs = Object.fromEntries(
        Object.entries(header.spec.inputs).map(([k, v]) => [k, { ...v, required: v?.default === undefined }]),
      );
      return { inputs, outputs: [] };
    },
    doc: "docs/gitlab-ci.md",
    inputsUnder: /^## The opencode-run component$/,
    outputsUnder: /^## The opencode-run component$/,
  },
];

function tablesUnder(markdown: string, heading: RegExp, first: RegExp): Table[] {
  const found = section(markdown, heading);
  return found ? tables(found.text, found.line).filter((t) => first.test(t.header[0] ?? "")) : [];
}

/** What a Default cell must say for a declared input. */
function expectedDefault(input: { required?: boolean; default?: unknown } | null): string {
  if (input?.default === undefined) return input?.required === false ? "*(empty)*" : "required";
  return input.default === "" ? "*(empty)*" : String(input.default);
}

/** What a Default cell says: its code span without quotes, or its text ("required", "*(empty)*"). */
function shownDefault(cell: string): string {
  const [span] = codeSpans(cell);
  return span === undefined ? cell.trim() : span.replace(/^"(.*)"$/, "$1");
}

describe("CI entry points: every input and output is documented, with its default", () => {
  it.each(ENTRY_POINTS)("$name ($file) in $doc", async (entry) => {
    const declared = await entry.declared();
    const markdown = await read(entry.doc);
    const problems: string[] = [];

    const inputTables = tablesUnder(markdown, entry.inputsUnder, /^input$/i);
    if (inputTables.length === 0) problems.push(`${entry.doc}: no table of inputs (first column "input") under ${entry.inputsUnder}`);
    const rows = new Map<string, { line: number; cells: string[]; defaultColumn: number }>();
    for (const table of inputTables)
      for (const row of table.rows)
        for (const name of codeSpans(row.cells[0] ?? "")) rows.set(name, { ...row, defaultColumn: column(table, /^default$/i) });
    for (const [name, input] of Object.entries(declared.inputs)) {
      const row = rows.get(name);
      if (!row) {
        problems.push(`${entry.doc}: input ${name} of ${entry.file} is not documented`);
        continue;
      }
      const shown = shownDefault(row.cells[row.defaultColumn] ?? "");
      if (shown !== expectedDefault(input))
        problems.push(
          `${entry.doc}:${row.line}: input ${name} defaults to "${expectedDefault(input)}" in ${entry.file}, the doc says "${shown}"`,
        );
    }
    for (const [name, row] of rows)
      if (!(name in declared.inputs))
        problems.push(`${entry.doc}:${row.line}: input ${name} is documented but ${entry.file} has no such input`);

    const outputRows = new Map<string, number>();
    for (const table of tablesUnder(markdown, entry.outputsUnder, /^output$/i))
      for (const row of table.rows) for (const name of codeSpans(row.cells[0] ?? "")) outputRows.set(name, row.line);
    for (const name of declared.outputs)
      if (!outputRows.has(name)) problems.push(`${entry.doc}: output ${name} of ${entry.file} is not documented`);
    for (const [name, line] of outputRows)
      if (!declared.outputs.includes(name))
        problems.push(`${entry.doc}:${line}: output ${name} is documented but ${entry.file} has no such output`);

    expect(problems).toEqual([]);
  });
});
