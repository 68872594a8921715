/**
 * The package as users get it: `npm pack` of this repository (dist/ as `npm test` built it), installed with npm into
 * a consumer project in a temp dir. test/support/global-setup.ts does it once per vitest run; the e2e tests (the real
 * opencode CLI), the CLI tests and the packed-library tests load the plugin, the `opencode-ci-auth` command and
 * `opencode-ci-auth/lib` from that install, exactly as a user's install would hold them.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { inject } from "vitest";

const run = promisify(execFile);

export interface PackedPackage {
  /** The `.tgz` npm pack wrote. */
  tarball: string;
  /** `<consumer>/node_modules/opencode-ci-auth`: the installed package. */
  packageDir: string;
  /** `<consumer>/node_modules/.bin/opencode-ci-auth`: the command's link, as npm made it. */
  bin: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    packedPackage: PackedPackage;
  }
}

/** Packs `repoRoot` (its dist/ must be built) into `scratch` and installs the tarball into a fresh consumer project. */
export async function packAndInstall(repoRoot: string, scratch: string): Promise<PackedPackage> {
  if (!(await stat(join(repoRoot, "dist", "index.js")).catch(() => undefined))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does) before the tests pack the package");
  }
  await mkdir(scratch, { recursive: true });
  // prepack would rebuild dist/; the tests pack what `npm test` just built.
  const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], {
    cwd: repoRoot,
    maxBuffer: 16 << 20,
  });
  const [result] = JSON.parse(packed.stdout) as Array<{ filename: string }>;
  const tarball = join(scratch, result!.filename);
  const consumer = join(scratch, "consumer");
  await mkdir(consumer, { recursive: true });
  await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }));
  // Offline: a package with no dependencies installs from its tarball alone (the optional peer is not installed).
  await run("npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", tarball], { cwd: consumer });
  const packageDir = join(consumer, "node_modules", "opencode-ci-auth");
  const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as { name?: string };
  if (manifest.name !== "opencode-ci-auth") throw new Error(`the packed install at ${packageDir} is not opencode-ci-auth`);
  return { tarball, packageDir, bin: join(consumer, "node_modules", ".bin", "opencode-ci-auth") };
}

/** The install made for this run by the global setup; fails with the fix when the run has none. */
export function packedPackage(): PackedPackage {
  const packed = inject("packedPackage");
  if (!packed) throw new Error("no packed package: run the tests through vitest.config.ts, whose globalSetup packs it");
  return packed;
}
