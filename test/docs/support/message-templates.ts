/**
 * The texts the project's code can print, as "fragments": every string literal and every static part of a template
 * literal in src/ (found anywhere under it, so files may move), plus the shell messages of the CI templates. A quoted
 * message is produced by the code when it can be cut into pieces that are fragments, joined where the code joins
 * texts (at an interpolation or a concatenation), with the doc's placeholders and the values of an example run in
 * between. The matching is deliberately strict: a word changed inside a fragment fails it.
 */
import { readFile, readdir } from "node:fs/promises";
import { join, relative } from "node:path";

import ts from "typescript";

/** Files whose texts count as message templates, relative to the repository root. */
const TEMPLATE_ROOTS: ReadonlyArray<{ dir: string; ext: RegExp }> = [
  { dir: "src", ext: /\.ts$/ },
  // The GitLab component and the GitHub workflow and action print messages of their own from shell steps.
  { dir: "templates", ext: /\.ya?ml$/ },
  { dir: ".github", ext: /\.(ya?ml|mjs)$/ },
];

async function walk(root: string, dir: string, ext: RegExp): Promise<string[]> {
  const entries = await readdir(join(root, dir), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(root, path, ext)));
    else if (ext.test(entry.name)) files.push(path);
  }
  return files;
}

/** Every string literal and static template part of a TypeScript or JavaScript file. */
export function scriptFragments(text: string, fileName: string): string[] {
  const kind = fileName.endsWith(".ts") ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, kind);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) out.push(node.text);
    else if (ts.isTemplateExpression(node)) {
      out.push(node.head.text);
      for (const span of node.templateSpans) out.push(span.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

/** The static parts of shell lines: each line cut at `$VAR`, `${…}`, `$(…)`, `$[[ … ]]` and `${{ … }}`. */
export function shellFragments(text: string): string[] {
  return text
    .split("\n")
    .flatMap((line) => line.split(/\$\{\{[^}]*\}\}|\$\[\[[^\]]*\]\]|\$\([^)]*\)|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/));
}

/** What an interpolated value looks like: no spaces, and a digit, an upper-case letter or one of `/:._-@"'[]{}=#`. */
const VALUE = /[0-9A-Z/:._\-@"'[\]{}=#]/;
/** The one value with a space: an error's class and code, as describeCause prints them (`TypeError ECONNREFUSED`). */
const CAUSE = /^[A-Z][A-Za-z]*Error E[A-Z0-9_]+/;

/** A trie of fragments: walking it answers "is this a prefix of a fragment" and "is this a whole fragment". */
class Trie {
  readonly next = new Map<string, Trie>();
  end = false;
  static add(root: Trie, text: string): void {
    let node = root;
    for (const ch of text) {
      let child = node.next.get(ch);
      if (!child) node.next.set(ch, (child = new Trie()));
      node = child;
    }
    node.end = true;
  }
}

export interface MatchOptions {
  /**
   * The segment is a whole quote without placeholders, an example of real output: its last word may be a value
   * even if it looks like a word ("provider miaou").
   */
  example: boolean;
}

export class MessageTemplates {
  readonly #forward = new Trie();
  readonly #backward = new Trie();
  /** All fragments joined by NUL, to ask "is this text inside one fragment". */
  #joined = "\0";
  readonly count: number;

  constructor(fragments: Iterable<string>) {
    const unique = new Set([...fragments].filter((f) => f.length > 0));
    for (const f of unique) {
      Trie.add(this.#forward, f);
      Trie.add(this.#backward, [...f].reverse().join(""));
    }
    this.#joined = `\0${[...unique].join("\0")}\0`;
    this.count = unique.size;
  }

  /** Whether `name` is one whole fragment: a name the code uses verbatim. */
  has(name: string): boolean {
    return this.#joined.includes(`\0${name}\0`);
  }

  /** Adds texts observed at run time (a library's own message, produced by a real failing input). */
  with(observed: Iterable<string>): MessageTemplates {
    return new MessageTemplates([...this.#joined.split("\0"), ...observed]);
  }

  /**
   * Whether the code can print `segment`, a stretch of a quoted message between two placeholders. It is inside one
   * fragment, or it is the end of a fragment, then whole fragments, then the start of one; and where the code joins
   * two fragments, an example run may have put one value (see VALUE and CAUSE) between them.
   */
  produces(segment: string, { example }: MatchOptions): boolean {
    if (segment.length === 0 || this.#joined.includes(segment)) return true;
    const chars = [...segment];
    const n = chars.length;
    // fragmentEnd[i]: chars[0..i) is printed and a fragment ends at i; valueEnd[i]: a value ends at i.
    const fragmentEnd = new Array<boolean>(n + 1).fill(false);
    const valueEnd = new Array<boolean>(n + 1).fill(false);
    // valueMayStart[i]: the piece that ends at i has more than blanks (so a run of words cannot pass for values).
    const valueMayStart = new Array<boolean>(n + 1).fill(false);
    // The first piece is the end of some fragment: its reverse is a prefix of a reversed fragment.
    for (let j = 1; j <= n; j++) {
      let walk: Trie | undefined = this.#backward;
      for (let k = j - 1; k >= 0 && walk; k--) walk = walk.next.get(chars[k] as string);
      if (walk) fragmentEnd[j] = valueMayStart[j] = true;
    }
    for (let i = 1; i <= n; i++) {
      if (!fragmentEnd[i] && !valueEnd[i]) continue;
      if (i === n) return true;
      // Then whole fragments, or, to finish, the start of one. A blank fragment never sits next to a value: else
      // any run of words would pass for values joined by spaces.
      let walk: Trie | undefined = this.#forward;
      for (let j = i; j < n && walk; j++) {
        walk = walk.next.get(chars[j] as string);
        if (!walk) break;
        if (j + 1 === n) return true;
        if (!walk.end) continue;
        const blank =
          chars
            .slice(i, j + 1)
            .join("")
            .trim() === "";
        if (!blank) fragmentEnd[j + 1] = valueMayStart[j + 1] = true;
        else if (fragmentEnd[i]) fragmentEnd[j + 1] = true;
      }
      // A value: never two in a row; it looks like a value, not a word, unless it is quoted or ends an example.
      if (valueMayStart[i]) {
        const rest = chars.slice(i).join("");
        const cause = CAUSE.exec(rest);
        if (cause) valueEnd[i + [...cause[0]].length] = true;
        let end = i;
        while (end < n && !/\s/.test(chars[end] as string)) end++;
        // A quoted word is a value too: `type "dpop"`.
        const quoted =
          chars[i - 1] === '"' &&
          chars
            .slice(i, end)
            .join("")
            .match(/^[^"]+(?=")/)?.[0];
        if (quoted) valueEnd[i + [...quoted].length] = true;
        for (let j = i + 1; j <= end; j++) if (VALUE.test(chars.slice(i, j).join("")) || (j === n && example)) valueEnd[j] = true;
      }
    }
    return false;
  }
}

/** The message templates of this repository. */
export async function loadMessageTemplates(root: string): Promise<MessageTemplates> {
  const fragments: string[] = [];
  for (const { dir, ext } of TEMPLATE_ROOTS) {
    for (const file of await walk(root, dir, ext)) {
      const text = await readFile(join(root, file), "utf8");
      const name = relative(root, join(root, file));
      fragments.push(...(/\.(ts|mjs)$/.test(name) ? scriptFragments(text, name) : shellFragments(text)));
    }
  }
  return new MessageTemplates(fragments);
}
