/**
 * Finds the messages a Markdown page quotes, by the convention stated in test/docs/quoted-messages.test.ts, and cuts
 * each into the stretches of literal text between its placeholders.
 */
import { cells, codeSpans } from "./markdown.js";

export interface Quote {
  /** 1-based line of the page. */
  line: number;
  /** The message as the page writes it, after the log decorations are taken off. */
  text: string;
  /** `message`: text the code prints. `identifier`: a name the code uses verbatim (an event name). */
  kind: "message" | "identifier";
}

/** Table columns, by header, whose backticked spans are messages ("Hint printed": the whole cell is one). */
export const MESSAGE_COLUMNS = new Set([
  "Problem line",
  "Message",
  "Hint printed",
  "`<why>`",
  "`<summary>`",
  "`<code>` or `<error name>: <reason>`",
  "On `http` to a non-loopback host",
]);
/** Table columns whose backticked spans are names the code uses as they are. */
export const IDENTIFIER_COLUMNS = new Set(["Event"]);

/** A placeholder: `<name>`, `…` or `...` (any text), `(s)` (an optional plural). */
const PLACEHOLDER = /<[^<>\n]+>|…|\.\.\.|\(s\)/g;
/** An optional part, `[: <body>]`: brackets around text that holds a placeholder. */
const OPTIONAL = /\[([^[\]]*(?:<[^<>]+>|…)[^[\]]*)\]/g;

/** The pretty log prefix `[00:22:59] ERROR: opencode-ci-auth [miaou]: ` and its trailing `{"event":…}` fields. */
const LOG_PREFIX = /^\[\d\d:\d\d:\d\d\] [A-Z]+: opencode-ci-auth \[[^\]]*\]: /;
const LOG_FIELDS = / \{".*\}$/;
/** A log level written before a message, `WARN:  `. */
const LEVEL = /^(?:TRACE|DEBUG|INFO|WARN|ERROR|FATAL):\s+/;
/** The event annotation after a message, `   (file_cache_miss, debug)`. */
const ANNOTATION = /\s{2,}\(([^()]*)\)$/;
const EVENT_NAME = /\b[a-z]+(?:_[a-z]+)+\b/g;

/** One line of a `text` block as a quote, plus the event names of its annotation; none for a row of data. */
function blockLine(raw: string, line: number): Quote[] {
  let text = raw.replace(/^Error: (?=opencode-ci-auth: )/, "");
  if (LOG_PREFIX.test(text)) text = text.replace(LOG_PREFIX, "").replace(LOG_FIELDS, "");
  text = text.replace(LEVEL, "");
  const quotes: Quote[] = [];
  const annotation = ANNOTATION.exec(text);
  if (annotation) {
    text = text.slice(0, annotation.index);
    for (const name of annotation[1]?.match(EVENT_NAME) ?? []) quotes.push({ line, text: name, kind: "identifier" });
  }
  // Columns aligned with runs of spaces are data (claims, a claim table, a report header), not a message.
  if (text.trim() === "" || /\S {2,}\S/.test(text)) return quotes;
  return [...quotes, { line, text, kind: "message" }];
}

/** Every quoted message and identifier of a page. */
export function docQuotes(markdown: string): Quote[] {
  const lines = markdown.split("\n");
  const quotes: Quote[] = [];
  let fence: string | undefined;
  let header: string[] | undefined;
  lines.forEach((raw, index) => {
    const line = index + 1;
    const opening = /^\s*(```+)(\S*)\s*$/.exec(raw);
    if (fence === undefined && opening) {
      fence = opening[2] === "text" ? "text" : "other";
      return;
    }
    if (fence !== undefined) {
      if (/^\s*```+\s*$/.test(raw)) fence = undefined;
      else if (fence === "text") quotes.push(...blockLine(raw, line));
      return;
    }
    if (!raw.trimStart().startsWith("|")) {
      header = undefined;
      return;
    }
    const row = cells(raw);
    if (!header) {
      header = row;
      return;
    }
    if (row.every((c) => /^:?-+:?$/.test(c))) return;
    row.forEach((cell, column) => {
      const title = header?.[column] ?? "";
      if (IDENTIFIER_COLUMNS.has(title)) for (const name of codeSpans(cell)) quotes.push({ line, text: name, kind: "identifier" });
      if (!MESSAGE_COLUMNS.has(title)) return;
      if (title === "Hint printed") {
        if (cell !== "none") quotes.push({ line, text: cell, kind: "message" });
      } else for (const span of codeSpans(cell)) quotes.push({ line, text: span, kind: "message" });
    });
  });
  return quotes;
}

export interface Segment {
  text: string;
  /** The quote has no placeholder: it is an example of real output, whose last word may be a value. */
  example: boolean;
}

/**
 * The literal stretches of a quote between its placeholders. An optional part `[…]` is a placeholder too, and its
 * own literal text is checked as a quote of its own.
 */
export function segments(quote: string): Segment[] {
  const out: Segment[] = [];
  const optional: string[] = [];
  const main = quote.replace(OPTIONAL, (_, inner: string) => {
    optional.push(inner);
    return "…";
  });
  const parts = main.split(PLACEHOLDER);
  for (const text of parts) if (text.length > 0) out.push({ text, example: parts.length === 1 });
  for (const inner of optional) out.push(...segments(inner).map((s) => ({ ...s, example: false })));
  return out;
}
