/**
 * scripts/pack-check.mjs, which CI runs after the tests: the real `npm pack --dry-run` of this repository passes,
 * and the check refuses tarballs that would ship tests, sources, or miss what package.json points at.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { describe, expect, it } from "vitest";

import { REPO_ROOT } from "../support/opencode-cli.js";

const SCRIPT = join(REPO_ROOT, "scripts", "pack-check.mjs");
const { checkPack, referencedFiles } = (await import(pathToFileURL(SCRIPT).href)) as {
  checkPack(files: string[], manifest: unknown): string[];
  referencedFiles(manifest: unknown): string[];
};
const manifest = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as Record<string, unknown>;

describe("pack check", () => {
  it("passes on this repository's tarball (dist/, declarations, licences, README, LICENSE, no dependencies, no tests)", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT], { cwd: REPO_ROOT });
    expect(stdout).toContain("pack check passed");
  });

  const good = [
    "LICENSE",
    "README.md",
    "package.json",
    ...referencedFiles(manifest),
    "dist/index.d.ts",
    "dist/lib.d.ts",
    "dist/THIRD_PARTY_LICENSES",
  ];

  it("accepts the files package.json needs", () => {
    expect(referencedFiles(manifest)).toEqual(expect.arrayContaining(["dist/index.js", "dist/index.d.ts", "dist/lib.js", "dist/lib.d.ts"]));
    expect(checkPack([...new Set(good)], manifest)).toEqual([]);
  });

  it("publishes no runtime dependencies: they are bundled", () => {
    expect(manifest.dependencies).toBeUndefined();
    expect(checkPack(good, { ...manifest, dependencies: { zod: "^4.0.0" } })).toContain(
      "package.json has runtime dependencies (zod): the build bundles them, so list them in devDependencies",
    );
  });

  it.each([
    [good.filter((f) => f !== "dist/THIRD_PARTY_LICENSES"), "missing dist/THIRD_PARTY_LICENSES"],
    [[...good, "test/index.test.ts"], "a test file would be published: test/index.test.ts"],
    [[...good, "dist/plugin.test.js"], "a test file would be published: dist/plugin.test.js"],
    [[...good, "src/index.ts"], "a file outside dist/ would be published: src/index.ts"],
    [[...good, ".github/workflows/ci.yml"], "a file outside dist/ would be published: .github/workflows/ci.yml"],
    [good.filter((f) => f !== "LICENSE"), "missing LICENSE"],
    [good.filter((f) => f !== "dist/lib.d.ts"), "package.json points at dist/lib.d.ts, which is not in the tarball"],
  ])("refuses a tarball with a problem (%#)", (files, problem) => {
    expect(checkPack([...new Set(files)], manifest)).toContain(problem);
  });
});
