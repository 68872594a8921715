/**
 * dist/THIRD_PARTY_LICENSES (written by scripts/build.mjs): every package whose code esbuild put into dist/, read
 * from the build's own metafile, is listed with its version, licence and full licence text, and the file is in
 * the tarball. `npm test` builds first.
 */
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { afterAll, describe, expect, it } from "vitest";

import { REPO_ROOT } from "../support/opencode-cli.js";

interface Metafile {
  outputs: Record<string, { inputs: Record<string, { bytesInOutput: number }> }>;
  inputs: Record<string, unknown>;
}
const build = (await import(pathToFileURL(join(REPO_ROOT, "scripts", "build.mjs")).href)) as {
  METAFILE: string;
  LICENSES_FILE: string;
  packageDirOf(input: string): string | undefined;
  bundledPackages(
    metafile: Pick<Metafile, "inputs">,
    root?: string,
  ): Array<{ name: string; version: string; license: string; text: string }>;
};

const metafile = JSON.parse(await readFile(build.METAFILE, "utf8")) as Metafile;
const notices = await readFile(join(REPO_ROOT, "dist", build.LICENSES_FILE), "utf8");
const scratch: string[] = [];

afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Every package folder whose code is in some output file (bytes actually emitted, not just resolved). */
function packagesInOutputs(): Set<string> {
  const dirs = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const dir = build.packageDirOf(input);
      if (dir && bytesInOutput > 0) dirs.add(dir);
    }
  }
  return dirs;
}

describe("dist/THIRD_PARTY_LICENSES", () => {
  it("lists every bundled package with its version, licence and licence text", async () => {
    const dirs = packagesInOutputs();
    expect(dirs.size).toBeGreaterThan(5);
    for (const dir of dirs) {
      const manifest = JSON.parse(await readFile(join(REPO_ROOT, dir, "package.json"), "utf8")) as {
        name: string;
        version: string;
        license: string;
      };
      expect(notices, dir).toContain(`\n${manifest.name}@${manifest.version} (${manifest.license})\n`);
    }
    for (const name of ["zod", "jose", "openid-client", "oauth4webapi", "pino", "jsonc-parser"])
      expect(notices).toMatch(new RegExp(`\\n${name}@\\d`));
    for (const pkg of build.bundledPackages(metafile)) expect(notices).toContain(pkg.text);
    expect(notices).not.toMatch(/\npino-pretty@/);
  });

  it("refuses to build when a bundled package ships no licence file", async () => {
    const root = await mkdtemp(join(tmpdir(), "licences-"));
    scratch.push(root);
    await mkdir(join(root, "node_modules", "bare"), { recursive: true });
    await writeFile(join(root, "node_modules", "bare", "package.json"), JSON.stringify({ name: "bare", version: "1.0.0", license: "MIT" }));
    await writeFile(join(root, "node_modules", "bare", "index.js"), "");
    expect(() => build.bundledPackages({ inputs: { "node_modules/bare/index.js": {} } }, root)).toThrow(
      "bare@1.0.0 (node_modules/bare) is bundled but ships no licence file: add its text by hand",
    );
  });

  it("is in the tarball", async () => {
    const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO_ROOT });
    const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    expect(pack!.files.map((f) => f.path)).toContain(`dist/${build.LICENSES_FILE}`);
  });
});
