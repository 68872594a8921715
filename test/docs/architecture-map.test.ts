/**
 * docs/architecture.md matches the code:
 * - the module map (every table with a "File" column under "## Module map") names every file under src/, once, and
 *   no file that does not exist;
 * - every path the page names in a code span, outside code blocks, exists (from the repository root, or from src/);
 * - "## Layers" exists (eslint.config.js's messages link to it) and names every layer that a lint rule names.
 * A failure names the file that is missing, or the line of the page that names what does not exist.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { beforeAll, describe, expect, it } from "vitest";

import { codeSpans, column, section, tables } from "./support/markdown.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const PAGE = "docs/architecture.md";

let page: string;

beforeAll(async () => {
  page = await readFile(join(ROOT, PAGE), "utf8");
});

/** Every file under src/, as `src/…` with forward slashes. */
async function sourceFiles(): Promise<string[]> {
  const entries = await readdir(join(ROOT, "src"), { recursive: true });
  const files: string[] = [];
  for (const entry of entries) {
    if ((await stat(join(ROOT, "src", entry))).isFile()) files.push(`src/${entry.split(sep).join("/")}`);
  }
  return files.sort();
}

/** The files the module map names, with the page line of each row. */
function mappedFiles(markdown: string): { rows: Array<{ file: string; line: number }>; problems: string[] } {
  const map = section(markdown, /^## Module map$/);
  if (!map) return { rows: [], problems: [`${PAGE} has no "## Module map" section`] };
  const rows: Array<{ file: string; line: number }> = [];
  const problems: string[] = [];
  for (const table of tables(map.text, map.line)) {
    const at = column(table, /^File$/);
    if (at < 0) continue;
    for (const row of table.rows) {
      const paths = codeSpans(row.cells[at] ?? "").filter((s) => s.startsWith("src/"));
      if (paths.length === 1) rows.push({ file: paths[0] as string, line: row.line });
      else problems.push(`${PAGE}:${row.line}: a row must name exactly one src/ file in its File column`);
    }
  }
  if (rows.length === 0) problems.push(`${PAGE}: the module map has no table with a "File" column`);
  return { rows, problems };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A code span that names a file (with an extension) or a folder (a trailing slash). */
const FILE_PATH = /^[\w-]+(?:\/[\w.-]+)*\.(?:ts|js|mjs|md|json)$/;
const FOLDER_PATH = /^[a-z][\w-]*(?:\/[a-z][\w-]*)*\/$/;

describe(`${PAGE}: the module map`, () => {
  it("names every file under src/", async () => {
    const { rows } = mappedFiles(page);
    const named = new Set(rows.map((r) => r.file));
    const missing = (await sourceFiles()).filter((f) => !named.has(f));
    expect(missing, `files under src/ that ${PAGE}'s module map does not list (add a row for each)`).toEqual([]);
  });

  it("names no file that does not exist, and each file once", async () => {
    const { rows, problems } = mappedFiles(page);
    const files = new Set(await sourceFiles());
    const seen = new Map<string, number>();
    for (const { file, line } of rows) {
      if (!files.has(file)) problems.push(`${PAGE}:${line}: ${file} does not exist`);
      const first = seen.get(file);
      if (first !== undefined) problems.push(`${PAGE}:${line}: ${file} is listed again (first at line ${first})`);
      else seen.set(file, line);
    }
    expect(problems).toEqual([]);
  });
});

describe(`${PAGE}: the paths it names`, () => {
  it("exist, from the repository root or from src/", async () => {
    const problems: string[] = [];
    let fenced = false;
    const lines = page.split("\n");
    for (const [index, text] of lines.entries()) {
      if (/^\s*```/.test(text)) fenced = !fenced;
      if (fenced) continue;
      for (const span of codeSpans(text)) {
        if (!(FILE_PATH.test(span) || FOLDER_PATH.test(span)) || span.startsWith("dist/")) continue;
        const found = (await exists(join(ROOT, span))) || (await exists(join(ROOT, "src", span)));
        if (!found) problems.push(`${PAGE}:${index + 1}: \`${span}\` exists neither in the repository nor under src/`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe(`${PAGE}: the layers`, () => {
  /** The layer names in eslint.config.js's no-restricted-imports messages ("<name> may not import from …"). */
  async function lintLayerNames(): Promise<string[]> {
    const config = (await import(pathToFileURL(join(ROOT, "eslint.config.js")).href)) as {
      default: Array<{ rules?: Record<string, unknown> }>;
    };
    const names = new Set<string>();
    for (const entry of config.default) {
      const rule = entry.rules?.["no-restricted-imports"];
      const options = Array.isArray(rule) ? (rule[1] as { patterns?: Array<{ message?: string }> } | undefined) : undefined;
      for (const pattern of options?.patterns ?? []) {
        const name = /^(.+?) may not import from a layer above it/.exec(pattern.message ?? "")?.[1];
        if (name) names.add(name);
      }
    }
    return [...names];
  }

  it('has the "## Layers" section that lint messages link to, naming every layer lint names', async () => {
    const layers = section(page, /^## Layers$/);
    expect(layers, `${PAGE} has no "## Layers" heading (eslint.config.js links to #layers)`).toBeDefined();
    const names = await lintLayerNames();
    expect(names.length).toBeGreaterThan(0);
    const unnamed = names.filter((name) => !codeSpans(layers?.text ?? "").includes(name));
    expect(unnamed, `layers that eslint.config.js names but ${PAGE}#layers does not (as a code span)`).toEqual([]);
  });
});
