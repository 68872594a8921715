/**
 * A local registry holding this repository's `npm pack` (at its own version) and a few more releases made from the
 * same files under other versions, plus the runtime dependencies, so `npm view`, `npm install` and opencode's own
 * installer all work on 127.0.0.1 with no public registry.
 *
 * The extra releases carry one added line at the top of dist/index.js: when OPENCODE_CI_AUTH_TEST_LOAD_MARKER names a
 * file, loading the plugin appends its version there. That tells a test which release's code opencode really ran.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { REPO_ROOT } from "../../support/opencode-cli.js";
import { lockedTarballs, runtimeLockPaths, startLocalRegistry, type LocalRegistry } from "./local-registry.js";

const run = promisify(execFile);

export const LOAD_MARKER_ENV = "OPENCODE_CI_AUTH_TEST_LOAD_MARKER";

export interface PluginReleases {
  registry: LocalRegistry;
  /** The version in package.json: the tarball `npm pack` made of this working tree, unchanged. */
  packed: string;
  /** Releases made from the same files: two patches of one minor, the `latest` tag, and a prerelease tagged `next`. */
  older: string;
  patched: string;
  latest: string;
  next: string;
  /**
   * A genuine release that the plugin does not depend on (a small dev dependency of this repository), published too,
   * and its files as npm extracts them in `dir`: what an attacker who may only use real releases could add to a tree.
   */
  extra: { name: string; version: string; dir: string };
  close(): Promise<void>;
}

const EXTRA = "node_modules/picocolors";

function marker(version: string): string {
  return (
    `import { appendFileSync as __testLoadMarker } from "node:fs";\n` +
    `if (process.env.${LOAD_MARKER_ENV}) __testLoadMarker(process.env.${LOAD_MARKER_ENV}, "${version}\\n");\n`
  );
}

export async function publishPluginReleases(): Promise<PluginReleases> {
  if (!(await stat(join(REPO_ROOT, "dist", "index.js")).catch(() => undefined))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does) before test/ci");
  }
  const scratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-releases-"));
  const registry = await startLocalRegistry();
  try {
    for (const tarball of await lockedTarballs(REPO_ROOT, await runtimeLockPaths(REPO_ROOT), join(scratch, "deps")))
      registry.publish(tarball, { tag: null });

    const manifest = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as Record<string, unknown> & { version: string };
    const major = Number(manifest.version.split(".")[0]) + 7;
    const versions = { older: `${major}.1.0`, patched: `${major}.1.3`, latest: `${major}.2.0`, next: `${major + 1}.0.0-rc.1` };
    const dirs = [REPO_ROOT];
    for (const version of Object.values(versions)) {
      const dir = join(scratch, `v${version}`);
      await mkdir(dir);
      for (const file of ["dist", "README.md", "LICENSE"]) await cp(join(REPO_ROOT, file), join(dir, file), { recursive: true });
      const { scripts: _scripts, ...rest } = manifest;
      await writeFile(join(dir, "package.json"), JSON.stringify({ ...rest, version }, null, 2));
      const entry = join(dir, "dist", "index.js");
      await writeFile(entry, marker(version) + (await readFile(entry, "utf8")));
      dirs.push(dir);
    }
    // One npm process packs them all: the working tree as it is (prepack skipped: npm test built dist/), then the rest.
    const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch, ...dirs], {
      cwd: scratch,
      maxBuffer: 16 << 20,
    });
    const results = JSON.parse(packed.stdout) as Array<{ filename: string; version: string }>;
    for (const result of results) registry.publish(await readFile(join(scratch, result.filename)), { tag: null });
    const [extraTarball] = await lockedTarballs(REPO_ROOT, [EXTRA], join(scratch, "extra"));
    const extra = { ...registry.publish(extraTarball!, { tag: null }), dir: join(scratch, "extra-files") };
    await mkdir(extra.dir, { recursive: true });
    await writeFile(join(scratch, "extra.tgz"), extraTarball!);
    await run("tar", ["-xzf", join(scratch, "extra.tgz"), "-C", extra.dir, "--strip-components=1"]);
    registry.setTag("opencode-ci-auth", "latest", versions.latest);
    registry.setTag("opencode-ci-auth", "next", versions.next);
    return {
      registry,
      packed: manifest.version,
      ...versions,
      extra,
      async close() {
        await registry.close();
        await rm(scratch, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await registry.close();
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}

/**
 * What opencode finds in a config dir whose plugin SDK it installed earlier: @opencode-ai/plugin (linked from this
 * repository), declared in package.json and in the lockfile, so opencode's dependency check sees it in sync and
 * installs nothing. It is opencode's own SDK, not the plugin under test.
 */
export async function seedOpencodeSdk(configDir: string): Promise<void> {
  const sdk = join(REPO_ROOT, "node_modules", "@opencode-ai", "plugin");
  const version = (JSON.parse(await readFile(join(sdk, "package.json"), "utf8")) as { version: string }).version;
  if (await stat(join(configDir, "package-lock.json")).catch(() => undefined)) return;
  await mkdir(join(configDir, "node_modules", "@opencode-ai"), { recursive: true });
  await symlink(sdk, join(configDir, "node_modules", "@opencode-ai", "plugin"), process.platform === "win32" ? "junction" : "dir");
  await writeFile(join(configDir, "package.json"), JSON.stringify({ dependencies: { "@opencode-ai/plugin": version } }, null, 2));
  await writeFile(
    join(configDir, "package-lock.json"),
    JSON.stringify(
      { name: "", lockfileVersion: 3, requires: true, packages: { "": { dependencies: { "@opencode-ai/plugin": version } } } },
      null,
      2,
    ),
  );
}

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/**
 * Publishes opencode's plugin SDK (`@opencode-ai/plugin`, this repository's devDependency, which matches its opencode)
 * and its dependency closure to `registry`, so `opencode-ci-auth prepare` can install it. Packages package-lock.json
 * records but npm did not install here (other platforms' optional binaries) are left out: npm skips them, as it does
 * any optional package it cannot fetch.
 */
export async function publishOpencodeSdk(registry: LocalRegistry): Promise<void> {
  const lock = JSON.parse(await readFile(join(REPO_ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
  const found = new Set<string>();
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ;) {
      const path = `${base ? `${base}/` : ""}node_modules/${name}`;
      if (lock.packages[path]) return path;
      if (!base) return undefined;
      const at = base.lastIndexOf("/node_modules/");
      base = at < 0 ? "" : base.slice(0, at);
    }
  };
  const walk = (path: string) => {
    if (found.has(path) || !existsSync(join(REPO_ROOT, path))) return;
    found.add(path);
    const entry = lock.packages[path] ?? {};
    for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      const next = resolve(path, name);
      if (next) walk(next);
    }
  };
  walk("node_modules/@opencode-ai/plugin");
  const scratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-sdk-"));
  try {
    for (const tarball of await lockedTarballs(REPO_ROOT, [...found], scratch)) registry.publish(tarball, { tag: null });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
