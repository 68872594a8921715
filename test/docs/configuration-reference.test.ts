/**
 * docs/configuration.md's reference and the zod schemas name the same fields, both ways, with the same defaults:
 * - the table of "Fields of `oauth2`" lists every field of the block (a nested object, `retry`, by its leaves:
 *   `retry.maxAttempts`), and nothing else; so does the README's configuration table;
 * - each subject-token source's section (### `<type>`) has a table of its fields but `type`, and nothing else;
 * - a field with a default in the schema shows that default in the row's Default column.
 * The schemas are walked generically from the exported oauth2Schema, so a new field or source is checked without
 * touching this test.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { oauth2Schema } from "../../src/config/schema.js";
import { codeSpans, column, section, tables, type Table } from "./support/markdown.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The parts of a zod 4 schema's definition this walk needs. */
interface Def {
  type: string;
  innerType?: Schema;
  in?: Schema;
  shape?: Record<string, Schema>;
  options?: Schema[];
  discriminator?: string;
  values?: unknown[];
  defaultValue?: unknown;
}
interface Schema {
  _zod: { def: Def };
}

const WRAPPERS = new Set(["optional", "default", "prefault", "nullable", "readonly", "catch", "nonoptional"]);

/** The schema under optional/default/… wrappers and the input side of a pipe. */
function unwrap(schema: Schema): Schema {
  let s = schema;
  for (;;) {
    const def = s._zod.def;
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else return s;
  }
}

/** The default a field takes when omitted, if the schema gives it one. */
function defaultOf(schema: Schema): unknown {
  for (let s: Schema | undefined = schema; s; s = s._zod.def.innerType ?? s._zod.def.in) {
    if (s._zod.def.type === "default") return s._zod.def.defaultValue;
  }
  return undefined;
}

interface Field {
  path: string;
  default: unknown;
}

/** The fields of an object schema: nested objects by their leaves (`retry.maxAttempts`); a union is one field. */
function fieldsOf(schema: Schema, prefix = ""): Field[] {
  const shape = unwrap(schema)._zod.def.shape ?? {};
  return Object.entries(shape).flatMap(([key, value]) => {
    const inner = unwrap(value)._zod.def;
    return inner.type === "object" ? fieldsOf(value, `${prefix}${key}.`) : [{ path: `${prefix}${key}`, default: defaultOf(value) }];
  });
}

/** Each source of the discriminated union, by its `type`. */
function sourcesOf(schema: Schema): Map<string, Field[]> {
  const union = unwrap((unwrap(schema)._zod.def.shape ?? {}).subjectTokenSource as Schema)._zod.def;
  const out = new Map<string, Field[]>();
  for (const option of union.options ?? []) {
    const type = unwrap((unwrap(option)._zod.def.shape ?? {})[union.discriminator ?? "type"] as Schema)._zod.def.values?.[0];
    out.set(
      String(type),
      fieldsOf(option).filter((f) => f.path !== union.discriminator),
    );
  }
  return out;
}

/** The field names of a reference table (the backticked names of its first column), with their rows. */
function documented(table: Table): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const row of table.rows) for (const name of codeSpans(row.cells[0] ?? "")) out.set(name, row.cells);
  return out;
}

/** The problems of one reference table against the fields it should list. */
function compare(where: string, table: Table, fields: Field[]): string[] {
  const rows = documented(table);
  const names = new Set(fields.map((f) => f.path));
  const problems = [...names].filter((n) => !rows.has(n)).map((n) => `${where}: field ${n} is in the schema but not documented`);
  problems.push(
    ...[...rows.keys()].filter((n) => !names.has(n)).map((n) => `${where}: ${n} is documented but the schema has no such field`),
  );
  const defaultColumn = column(table, /^default$/i);
  for (const field of fields) {
    const cells = rows.get(field.path);
    if (!cells || field.default === undefined || typeof field.default === "object") continue;
    const shown = codeSpans(cells[defaultColumn] ?? "").map((s) => s.replace(/^"(.*)"$/, "$1"));
    if (!shown.includes(String(field.default)))
      problems.push(`${where}: ${field.path} defaults to ${JSON.stringify(field.default)}, the doc says "${cells[defaultColumn]}"`);
  }
  return problems;
}

/** The first table under a heading, or a failure that names the heading. */
function tableUnder(markdown: string, file: string, heading: RegExp): Table {
  const found = section(markdown, heading);
  const [table] = found ? tables(found.text, found.line) : [];
  if (!table) throw new Error(`${file}: no table under a heading matching ${heading}`);
  return table;
}

const schema = oauth2Schema as unknown as Schema;

describe("docs/configuration.md mirrors the zod schemas", () => {
  it("the schema walk finds the fields (a sanity check of the walk itself)", () => {
    const paths = fieldsOf(schema).map((f) => f.path);
    expect(paths).toEqual(
      expect.arrayContaining(["issuer", "clientId", "subjectTokenSource", "expectClaims", "retry.maxAttempts", "cache"]),
    );
    expect(
      sourcesOf(schema)
        .get("url")
        ?.map((f) => f.path),
    ).toEqual(expect.arrayContaining(["url", "headers", "format", "field", "audience"]));
    expect(fieldsOf(schema).find((f) => f.path === "timeoutSeconds")?.default).toBe(10);
  });

  it("Fields of `oauth2`: every field of the block, and only those, with the schema's defaults", async () => {
    const markdown = await readFile(join(ROOT, "docs/configuration.md"), "utf8");
    const table = tableUnder(markdown, "docs/configuration.md", /^## Fields of `oauth2`/);
    expect(compare(`docs/configuration.md:${table.line}`, table, fieldsOf(schema))).toEqual([]);
  });

  it("each source's section: every field of that source but `type`, and only those, with the schema's defaults", async () => {
    const markdown = await readFile(join(ROOT, "docs/configuration.md"), "utf8");
    const problems: string[] = [];
    for (const [type, fields] of sourcesOf(schema)) {
      const table = tableUnder(markdown, "docs/configuration.md", new RegExp(`^### \`${type}\`$`));
      problems.push(...compare(`docs/configuration.md:${table.line} (${type})`, table, fields));
    }
    expect(problems).toEqual([]);
  });

  it("the README's configuration table: every field of the block, and only those, with the schema's defaults", async () => {
    const markdown = await readFile(join(ROOT, "README.md"), "utf8");
    const table = tableUnder(markdown, "README.md", /^## Configuration reference/);
    expect(compare(`README.md:${table.line}`, table, fieldsOf(schema))).toEqual([]);
  });
});
