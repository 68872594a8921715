/**
 * scripts/build.mjs bundles pino apart, as dist/vendor/pino.cjs, so that the plugin's import never reads it: the
 * logger require()s it on the first line it writes. `npm test` builds first.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { afterAll, describe, expect, it } from "vitest";

import { REPO_ROOT } from "../support/opencode-cli.js";

const build = (await import(pathToFileURL(join(REPO_ROOT, "scripts", "build.mjs")).href)) as {
  PINO_VENDOR: string;
  checkPinoRequires(dist: string): void;
};
const DIST = join(REPO_ROOT, "dist");
const scratch: string[] = [];

afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A marker of pino's own code: the symbol its serializers hang on. */
const PINO_CODE = 'Symbol.for("pino.serializers")';

describe("pino's vendored bundle", () => {
  it("holds pino's code, which no other file of dist/ holds", async () => {
    expect(await readFile(join(DIST, build.PINO_VENDOR), "utf8")).toContain(PINO_CODE);
    const others = (await readdir(DIST, { recursive: true }))
      .filter((f) => /\.(c|m)?js$/.test(f) && f !== build.PINO_VENDOR)
      .map((f) => join(DIST, f));
    expect(others.length).toBeGreaterThan(3);
    for (const file of others) expect((await readFile(file, "utf8")).includes(PINO_CODE), file).toBe(false);
  });

  it("is required only from files directly in dist/, where its relative path resolves", async () => {
    expect(() => build.checkPinoRequires(DIST)).not.toThrow();
    const dist = await mkdtemp(join(tmpdir(), "pino-vendor-"));
    scratch.push(dist);
    await mkdir(join(dist, "cli"));
    await writeFile(join(dist, "chunk-A.js"), `const p = require("./${build.PINO_VENDOR}");`);
    expect(() => build.checkPinoRequires(dist)).not.toThrow();
    await writeFile(join(dist, "cli", "main.js"), `const p = require("./${build.PINO_VENDOR}");`);
    expect(() => build.checkPinoRequires(dist)).toThrow(/cli\/main\.js require vendor\/pino\.cjs but are not in dist\//);
  });
});
