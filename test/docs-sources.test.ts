/**
 * Every subject-token source is documented: a section in docs/configuration.md, a section of its messages in
 * docs/troubleshooting.md (the local file/env checks share one), and a row in the README's source table.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { SOURCE_TYPES } from "../src/config/schema.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const read = (path: string) => readFile(join(ROOT, path), "utf8");

describe("docs cover every subject-token source", () => {
  it.each(SOURCE_TYPES)("%s", async (type) => {
    expect(await read("docs/configuration.md"), "configuration.md section").toContain(`\n### \`${type}\`\n`);
    expect(await read("docs/troubleshooting.md"), "troubleshooting.md section").toContain(`\n### ${type}\n`);
    expect(await read("README.md"), "README source table row").toContain(`| \`{ "type": "${type}"`);
  });
});
