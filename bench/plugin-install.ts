/**
 * opencode's own install of the plugin, timed (issue 13: "fetches one package; measure its time before and after").
 * Not part of `npm run bench`: each sample is a real `opencode run` in a fresh HOME, seconds long.
 *
 *   node --import tsx bench/plugin-install.ts [--runs 3] [--before <repo with an unbundled build>]
 *
 * A loopback registry (test/ci/support/local-registry.ts) serves this working tree's packed tarball ("after") and,
 * with --before, another checkout's packed tarball with its runtime dependencies' registry tarballs ("before": the
 * package as it was published before the bundle). For each variant, runs alternate between a fresh HOME where
 * opencode must install the plugin from the registry and one where it is already installed (linked), so the
 * difference of the medians is the install's cost. opencode's SDK in its config dir is pre-populated in both.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { lockedTarballs, runtimeLockPaths, startLocalRegistry, type LocalRegistry } from "../test/ci/support/local-registry.js";
import { createSandbox, REPO_ROOT } from "../test/support/opencode-cli.js";
import { githubActionsEnv, issueConfig } from "../test/support/issue-config.js";
import { startWorld, type World } from "../test/support/world.js";
import { median } from "./stats.js";

const run = promisify(execFile);
const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, before: { type: "string" } } });
const runs = Number(values.runs);

async function pack(repo: string, scratch: string): Promise<{ tarball: Buffer; dir: string }> {
  await mkdir(scratch, { recursive: true });
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], {
    cwd: repo,
    maxBuffer: 16 << 20,
  });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  const file = join(scratch, filename);
  const dir = join(scratch, `unpacked-${filename}`);
  await mkdir(dir, { recursive: true });
  await run("tar", ["-xzf", file, "-C", dir, "--strip-components=1"]);
  return { tarball: await readFile(file), dir };
}

/** One `opencode run`, in a fresh HOME; with `installed` set, the plugin (and its deps, if any) is already in place. */
async function timedRun(world: World, registry: LocalRegistry, installed: string | undefined): Promise<{ ms: number; tarballs: number }> {
  const sandbox = await createSandbox(githubActionsEnv(world), { plugin: "none" });
  try {
    if (installed) {
      const target = join(sandbox.home, ".cache", "opencode", "packages", "opencode-ci-auth@latest", "node_modules", "opencode-ci-auth");
      await mkdir(dirname(target), { recursive: true });
      await symlink(installed, target, "dir");
    }
    await sandbox.writeConfig(issueConfig(world));
    const before = registry.requests.length;
    const result = await sandbox.run(["run", "--model", "miaou/mock-model", "Say hello"], {
      env: { npm_config_offline: "false", npm_config_registry: registry.url, npm_config_userconfig: join(sandbox.home, ".npmrc") },
    });
    if (result.code !== 0 || !result.stdout.includes("Hello from the mock model"))
      throw new Error(`opencode run failed:\n${result.stderr.slice(-2000)}`);
    const tarballs = registry.requests.slice(before).filter((r) => r.path.startsWith("/-/tarballs/")).length;
    return { ms: result.durationMs, tarballs };
  } finally {
    await sandbox.dispose();
  }
}

async function variant(name: string, repo: string, world: World, scratch: string) {
  const registry = await startLocalRegistry();
  try {
    const { tarball, dir } = await pack(repo, join(scratch, name));
    registry.publish(tarball);
    const deps = await lockedTarballs(repo, await runtimeLockPaths(repo), join(scratch, name, "deps"));
    for (const dep of deps) registry.publish(dep, { tag: null });
    // The "installed" case links the unpacked tarball; an unbundled one also needs its dependencies beside it.
    const installed = deps.length > 0 ? repo : dir;
    const fresh: number[] = [];
    const ready: number[] = [];
    let tarballs = 0;
    for (let i = 0; i < runs; i++) {
      const f = await timedRun(world, registry, undefined);
      fresh.push(f.ms);
      tarballs = f.tarballs;
      ready.push((await timedRun(world, registry, installed)).ms);
    }
    return {
      name,
      packages: deps.length + 1,
      tarballsFetched: tarballs,
      tarballBytes: tarball.length,
      freshMs: median(fresh),
      installedMs: median(ready),
      fresh,
      ready,
    };
  } finally {
    await registry.close();
  }
}

const world = await startWorld();
const scratch = await mkdtemp(join(tmpdir(), "plugin-install-bench-"));
try {
  const results = [];
  if (values.before) results.push(await variant("before", resolve(values.before), world, scratch));
  results.push(await variant("after", REPO_ROOT, world, scratch));
  for (const r of results) {
    process.stdout.write(
      `${r.name}: ${r.packages} package(s) served, ${r.tarballsFetched} tarball(s) fetched by opencode's install, plugin tarball ${(r.tarballBytes / 1024).toFixed(0)} kB · ` +
        `opencode run median of ${runs}: ${(r.freshMs / 1000).toFixed(2)} s installing, ${(r.installedMs / 1000).toFixed(2)} s already installed, ` +
        `install ≈ ${((r.freshMs - r.installedMs) / 1000).toFixed(2)} s  [fresh ${r.fresh.map((m) => (m / 1000).toFixed(2)).join(", ")}; installed ${r.ready.map((m) => (m / 1000).toFixed(2)).join(", ")}]\n`,
    );
  }
} finally {
  await world.close();
  await rm(scratch, { recursive: true, force: true });
}
