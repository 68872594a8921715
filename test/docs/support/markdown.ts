/** Just enough Markdown for the doc tests: sections by heading, tables, table cells and code spans. */

export interface Table {
  /** 1-based line of the header row. */
  line: number;
  header: string[];
  rows: Array<{ line: number; cells: string[] }>;
}

/** The cells of a table row; `\|` is a pipe inside a cell. */
export function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, "")
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, "|"));
}

/** The code spans of a cell: `x`, or ``x`` when x holds a backtick. */
export function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/(`+)(.+?)\1(?!`)/g)].map((m) => {
    const body = m[2] ?? "";
    return m[1] === "``" ? body.replace(/^ (.*) $/, "$1") : body;
  });
}

/** Every table of a text, outside code blocks. `firstLine` is the 1-based line the text starts at. */
export function tables(text: string, firstLine = 1): Table[] {
  const out: Table[] = [];
  let fenced = false;
  let current: Table | undefined;
  text.split("\n").forEach((raw, index) => {
    const line = firstLine + index;
    if (/^\s*```/.test(raw)) fenced = !fenced;
    if (fenced || !raw.trimStart().startsWith("|")) {
      current = undefined;
      return;
    }
    const row = cells(raw);
    if (!current) out.push((current = { line, header: row, rows: [] }));
    else if (!row.every((c) => /^:?-+:?$/.test(c))) current.rows.push({ line, cells: row });
  });
  return out;
}

/** The text under the heading that `heading` matches, up to the next heading of the same or a higher level. */
export function section(markdown: string, heading: RegExp): { text: string; line: number } | undefined {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^#{1,6} /.test(l) && heading.test(l));
  if (start < 0) return undefined;
  const level = /^#+/.exec(lines[start] as string)?.[0].length ?? 1;
  let end = start + 1;
  while (end < lines.length && !(/^#{1,6} /.test(lines[end] as string) && (/^#+/.exec(lines[end] as string)?.[0].length ?? 7) <= level))
    end++;
  return { text: lines.slice(start + 1, end).join("\n"), line: start + 2 };
}

/** The column of a table whose header matches, as an index; -1 when there is none. */
export function column(table: Table, header: RegExp): number {
  return table.header.findIndex((h) => header.test(h));
}
