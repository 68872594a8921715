#!/usr/bin/env node
// Moves every pin of opencode-ci-auth's own version to one release, so the examples install the release they
// document and the reusable workflow uses the setup action of its own release:
//   npm run bump-version -- 0.2.0    sets package.json and package-lock.json (npm version), then every pin
//   npm run bump-version -- --check  lists each pin that differs from package.json's version; exit 1 if any
// A pin is a version after `opencode-ci-auth/.github/actions/setup@v`, `opencode-ci-auth/.github/workflows/
// opencode-run.yml@v`, `opencode-ci-auth@v`, `opencode-ci-auth/opencode-run@` (the GitLab component) or `@v` in a code
// span, anywhere in the docs, examples, templates and .github; and, in examples/, the exact version after
// `version:` (the setup action's input), `plugin-version:` or `opencode-ci-auth@`. test/docs/pinned-versions.test.ts
// checks that every pin equals package.json's version and that the examples hold no copy of it that is not a pin.
import { execFileSync } from "node:child_process";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** An exact semantic version, prerelease and build included (no ranges: `^0.1.0` is not a pin). */
export const SEMVER = String.raw`\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?`;

/** Each pattern captures the text before the version (1) and the version (2). */
const PATTERNS = [
  {
    examplesOnly: false,
    re: new RegExp(String.raw`(opencode-ci-auth/\.github/(?:actions/setup|workflows/opencode-run\.yml)@v)(${SEMVER})(?![\w-]|\.\w)`, "g"),
  },
  { examplesOnly: false, re: new RegExp(String.raw`(opencode-ci-auth@v)(${SEMVER})(?![\w-]|\.\w)`, "g") },
  { examplesOnly: false, re: new RegExp(String.raw`(opencode-ci-auth/opencode-run@)(${SEMVER})(?![\w-]|\.\w)`, "g") },
  { examplesOnly: false, re: new RegExp(String.raw`(\x60@v)(${SEMVER})(?=\x60)`, "g") },
  { examplesOnly: true, re: new RegExp(String.raw`((?<![\w-])(?:plugin-)?version:[ \t]*"?)(${SEMVER})(?="?(?:[ \t]|$))`, "gm") },
  { examplesOnly: true, re: new RegExp(String.raw`(opencode-ci-auth@)(${SEMVER})(?![\w-]|\.\w)`, "g") },
];

/** Where pins live, relative to the repository root. */
export const PIN_ROOTS = ["README.md", "docs", "examples", "templates", ".github"];
const TEXT_FILE = /\.(md|ya?ml|json|jsonc|mjs|js|ts)$/;

async function walk(root, path) {
  const entries = await readdir(join(root, path), { withFileTypes: true }).catch((err) => {
    if (err.code === "ENOTDIR") return null;
    if (err.code === "ENOENT") return [];
    throw err;
  });
  if (entries === null) return TEXT_FILE.test(path) ? [path] : [];
  const files = [];
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(root, child)));
    else if (TEXT_FILE.test(entry.name)) files.push(child);
  }
  return files;
}

/** The files that may hold pins, relative to `root`, with `/` separators. */
export async function pinFiles(root = ROOT) {
  const files = [];
  for (const path of PIN_ROOTS) files.push(...(await walk(root, path)));
  return files.map((f) => f.split(sep).join("/")).sort();
}

/** Every pin in a file's text: where the version starts, the version, and its 1-based line. */
export function findPins(text, file) {
  const inExamples = file.startsWith("examples/");
  const pins = [];
  for (const { examplesOnly, re } of PATTERNS) {
    if (examplesOnly && !inExamples) continue;
    for (const m of text.matchAll(re)) {
      const index = (m.index ?? 0) + m[1].length;
      if (pins.some((p) => p.index === index)) continue;
      pins.push({ index, version: m[2], line: text.slice(0, index).split("\n").length });
    }
  }
  return pins.sort((a, b) => a.index - b.index);
}

/** Sets every pin under `root` to `version`; returns the files changed, with their number of pins. */
export async function bumpPins(version, root = ROOT) {
  if (!new RegExp(`^${SEMVER}$`).test(version)) throw new Error(`not an exact version: ${version}`);
  const changed = [];
  for (const file of await pinFiles(root)) {
    const text = await readFile(join(root, file), "utf8");
    const pins = findPins(text, file).filter((p) => p.version !== version);
    if (pins.length === 0) continue;
    let out = "";
    let at = 0;
    for (const pin of pins) {
      out += text.slice(at, pin.index) + version;
      at = pin.index + pin.version.length;
    }
    await writeFile(join(root, file), out + text.slice(at));
    changed.push({ file, pins: pins.length });
  }
  return changed;
}

/** Every pin under `root` that differs from `version`. */
export async function stalePins(version, root = ROOT) {
  const stale = [];
  for (const file of await pinFiles(root)) {
    const text = await readFile(join(root, file), "utf8");
    for (const pin of findPins(text, file)) if (pin.version !== version) stale.push({ file, ...pin });
  }
  return stale;
}

async function packageVersion(root) {
  return JSON.parse(await readFile(join(root, "package.json"), "utf8")).version;
}

async function main(args) {
  const root = process.cwd();
  if (args[0] === "--check") {
    const version = await packageVersion(root);
    const stale = await stalePins(version, root);
    for (const pin of stale) process.stderr.write(`${pin.file}:${pin.line}: pins ${pin.version}, package.json is ${version}\n`);
    return stale.length ? 1 : 0;
  }
  const [version] = args;
  if (!version || args.length !== 1 || !new RegExp(`^${SEMVER}$`).test(version)) {
    process.stderr.write("usage: npm run bump-version -- <exact version, e.g. 0.2.0> | --check\n");
    return 2;
  }
  if ((await packageVersion(root)) !== version) {
    execFileSync("npm", ["version", version, "--no-git-tag-version", "--ignore-scripts"], { cwd: root, stdio: "inherit" });
  }
  const changed = await bumpPins(version, root);
  for (const { file, pins } of changed) process.stdout.write(`${relative(root, join(root, file))}: ${pins} pin(s) set to ${version}\n`);
  if (changed.length === 0) process.stdout.write(`every pin is already ${version}\n`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
