/**
 * Every message the docs quote is one the code prints.
 *
 * What counts as a quoted message (test/docs/support/doc-quotes.ts applies it):
 * - every line of a ```text block, after the decorations of a log line are taken off: `Error: ` before
 *   `opencode-ci-auth:` (opencode's own), the pretty log prefix `[hh:mm:ss] LEVEL: opencode-ci-auth [<provider>]: `
 *   and its trailing `{"event":…}` fields, a leading `WARN:  `, and a trailing annotation `   (event_name, level)`,
 *   whose event names are checked as names. A line whose columns are aligned with runs of two or more spaces is data
 *   (claims, a claim table, the doctor's header) and is not checked;
 * - in a table, each backticked span of a column headed one of MESSAGE_COLUMNS (the whole cell for "Hint printed"),
 *   and each backticked name of a column headed "Event", which must be a string the code uses as it is.
 * Prose is not checked: a message quoted in a sentence is an excerpt; quote a whole message in a block or a table.
 *
 * Placeholders are wildcards: `<name>`, `…` (or `...`), `(s)` for an optional plural, and `[…]` around an optional part
 * that holds a placeholder (its own literal text is checked too). A quote also matches where an example run put a
 * value (a number, a URL, a provider id: text without spaces) at a place where the code interpolates one.
 *
 * Where do messages come from: every string and template literal under src/ (wherever the files move), the shell
 * messages of templates/ and .github/, and, for words a library or the runtime chooses (zod; Node's and Bun's key
 * errors), the messages produced here from real failing inputs (test/docs/support/observed-messages.ts).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { docQuotes, segments, type Quote } from "./support/doc-quotes.js";
import { loadMessageTemplates, type MessageTemplates } from "./support/message-templates.js";
import { keyFileReason, keyFileReasonsUnderBun, writeKeyCases, zodMessages, type KeyCase } from "./support/observed-messages.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The pages that quote messages; security.md quotes none by this convention today, but may. */
const DOCS = [
  "docs/troubleshooting.md",
  "docs/reliability.md",
  "docs/configuration.md",
  "docs/doctor.md",
  "docs/gitlab-ci.md",
  "docs/security.md",
  "docs/prepare.md",
];
const MAY_QUOTE_NONE = new Set(["docs/security.md"]);
const OPENCODE_BIN = join(ROOT, "node_modules", ".bin", "opencode");

/** What is wrong with one quote, or undefined when the code prints it. */
function problemOf(quote: Quote, templates: MessageTemplates): string | undefined {
  if (quote.kind === "identifier") return templates.has(quote.text) ? undefined : `"${quote.text}" is a name no code uses`;
  const missing = segments(quote.text).filter((s) => !templates.produces(s.text, s));
  return missing.length
    ? `${JSON.stringify(quote.text)}: no code prints ${missing.map((s) => JSON.stringify(s.text)).join(", ")}`
    : undefined;
}

let templates: MessageTemplates;
let keyDir: string;
let keyCases: KeyCase[];
const nodeReasons: string[] = [];
let bunReasons: string[] = [];

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), "opencode-ci-auth-docs-keys-"));
  keyCases = await writeKeyCases(keyDir);
  for (const c of keyCases) nodeReasons.push(await keyFileReason(c));
  bunReasons = await keyFileReasonsUnderBun(OPENCODE_BIN, join(ROOT, "src"), keyCases);
  templates = (await loadMessageTemplates(ROOT)).with([...zodMessages(), ...nodeReasons, ...bunReasons]);
}, 60_000);

afterAll(async () => {
  await rm(keyDir, { recursive: true, force: true });
});

describe("quoted messages", () => {
  it.each(DOCS)("%s: every quoted message is printed by the code", async (doc) => {
    const quotes = docQuotes(await readFile(join(ROOT, doc), "utf8"));
    // A page that stops yielding quotes most likely changed its layout (a column header, a block's language).
    if (!MAY_QUOTE_NONE.has(doc)) expect(quotes.length, "quotes found by the convention").toBeGreaterThan(0);
    const problems = quotes.flatMap((q) => {
      const problem = problemOf(q, templates);
      return problem ? [`${doc}:${q.line}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it("refuses the stale quotes issue 14 found, and a quote with one word changed", () => {
    const stale = [
      "model discovery: GET <url> did not succeed: no access token (see the error above)",
      "Error ERR_OSSL_UNSUPPORTED: error:1E08010C:DECODER routines::unsupported",
      "Error ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED: …",
      "TypeError ERR_MISSING_PASSPHRASE: Passphrase required for encrypted key",
      "… audience mismatch …",
      "oauth2.<field>: <field> is mandatory",
      "discovery at <issuer> did not succeed: the answer is not JSON. Check that issuer is the IdP's issuer URI (e.g. Keycloak: https://HOST/realms/REALM).",
    ];
    for (const text of stale) expect(problemOf({ line: 1, text, kind: "message" }, templates), text).toBeDefined();
    expect(problemOf({ line: 1, text: "file_cache_exploded", kind: "identifier" }, templates)).toBeDefined();
    // And accepts the same messages as the code prints them.
    expect(
      problemOf({ line: 1, text: "model discovery: GET <url> did not succeed: see the plugin's error above", kind: "message" }, templates),
    ).toBeUndefined();
  });

  it("reads the templates of src/, and produces the key-file errors under Node and under Bun, which word some differently", () => {
    expect(templates.count).toBeGreaterThan(1000);
    expect(bunReasons).toHaveLength(keyCases.length);
    for (const reasons of [nodeReasons, bunReasons]) for (const r of reasons) expect(r).toMatch(/^oauth2\.privateKeyPath: /);
    expect(bunReasons).not.toEqual(nodeReasons);
  });
});
