/**
 * Every pin of opencode-ci-auth's own version (the examples, the GitLab docs, our action and workflow references)
 * equals package.json's version, and scripts/bump-version.mjs (`npm run bump-version -- <version>`) moves them all:
 * the examples hold no copy of the version that the script would not move.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SCRIPT = join(ROOT, "scripts", "bump-version.mjs");

interface Pin {
  index: number;
  version: string;
  line: number;
}
interface BumpModule {
  PIN_ROOTS: string[];
  pinFiles(root?: string): Promise<string[]>;
  findPins(text: string, file: string): Pin[];
  bumpPins(version: string, root?: string): Promise<Array<{ file: string; pins: number }>>;
}
const bump = (await import(pathToFileURL(SCRIPT).href)) as BumpModule;
const VERSION = (JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** Every pin of the tree at `root`, as `file:line version`. */
async function pinsOf(root: string): Promise<Array<{ at: string; file: string; version: string }>> {
  const out = [];
  for (const file of await bump.pinFiles(root)) {
    for (const pin of bump.findPins(await readFile(join(root, file), "utf8"), file))
      out.push({ at: `${file}:${pin.line}`, file, version: pin.version });
  }
  return out;
}

const scratch: string[] = [];
afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/** A copy of the files that hold pins, and package.json, to bump without touching the worktree. */
async function copyOfTree(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "opencode-ci-auth-bump-"));
  scratch.push(dir);
  for (const path of [...bump.PIN_ROOTS, "package.json"]) await cp(join(ROOT, path), join(dir, path), { recursive: true });
  return dir;
}

describe("pinned versions of opencode-ci-auth", () => {
  it("every pin equals package.json's version", async () => {
    const pins = await pinsOf(ROOT);
    // The places the release instructions name: the GitHub and GitLab examples, the GitLab docs, our workflow.
    const files = new Set(pins.map((p) => p.file));
    for (const file of [
      "examples/gitlab-ci.yml",
      "docs/gitlab-ci.md",
      "examples/github/on-push-main.yml",
      "examples/github/matrix.yml",
      ".github/workflows/opencode-run.yml",
    ]) {
      expect([...files], `pins found in ${file}`).toContain(file);
    }
    expect(pins.filter((p) => p.version !== VERSION).map((p) => `${p.at}: pins ${p.version}, package.json is ${VERSION}`)).toEqual([]);
  });

  it("the examples hold no copy of the version that is not a pin (the script would leave it behind)", async () => {
    const loose: string[] = [];
    for (const file of (await bump.pinFiles(ROOT)).filter((f) => f.startsWith("examples/"))) {
      const text = await readFile(join(ROOT, file), "utf8");
      const pinned = new Set(bump.findPins(text, file).map((p) => p.index));
      for (let at = text.indexOf(VERSION); at >= 0; at = text.indexOf(VERSION, at + 1)) {
        const whole = !/[\d.]/.test(text[at - 1] ?? "") && !/\w/.test(text[at + VERSION.length] ?? "");
        if (whole && !pinned.has(at)) loose.push(`${file}:${text.slice(0, at).split("\n").length}`);
      }
    }
    expect(loose).toEqual([]);
  });

  it("bump-version moves every pin, and only pins, to the new version", async () => {
    const dir = await copyOfTree();
    const before = await pinsOf(dir);
    const changed = await bump.bumpPins("9.8.7", dir);
    expect(changed.reduce((n, c) => n + c.pins, 0)).toBe(before.length);
    const after = await pinsOf(dir);
    expect(after.map((p) => p.at)).toEqual(before.map((p) => p.at));
    expect(after.every((p) => p.version === "9.8.7")).toBe(true);
    // Nothing else changed: the bumped file is the original with the versions replaced.
    const original = await readFile(join(ROOT, "examples/gitlab-ci.yml"), "utf8");
    expect(await readFile(join(dir, "examples/gitlab-ci.yml"), "utf8")).toBe(
      original.replaceAll(`@${VERSION}`, "@9.8.7").replace(`plugin-version: ${VERSION}`, "plugin-version: 9.8.7"),
    );
  });

  it("--check exits 1 naming a stale pin, and 0 once every pin matches", async () => {
    const dir = await copyOfTree();
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [SCRIPT, ...args], { cwd: dir }).then(
        (r) => ({ code: 0, stderr: r.stderr }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
    expect(await run(["--check"])).toEqual({ code: 0, stderr: "" });
    const file = join(dir, "examples/gitlab-ci.yml");
    await writeFile(file, (await readFile(file, "utf8")).replace(`plugin-version: ${VERSION}`, "plugin-version: 0.0.1"));
    const stale = await run(["--check"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(
      new RegExp(`^examples/gitlab-ci\\.yml:\\d+: pins 0\\.0\\.1, package\\.json is ${VERSION.replace(/\./g, "\\.")}\\n$`),
    );
  });
});
