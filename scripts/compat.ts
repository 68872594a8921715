/**
 * `npm run test:compat [-- <version> ...]`: the core end-to-end scenarios (test/compat/core-scenarios.compat.ts)
 * against each opencode version of the matrix (test/compat/versions.ts), or against the versions given, one after
 * another. Each version is installed from the npm registry into a directory of its own, outside the repository:
 * `<os temp dir>/opencode-ci-auth-compat/<version>` (about 0.5 GB each with its platform binaries; delete it freely),
 * or `$OPENCODE_CI_AUTH_COMPAT_DIR/<version>`. Later runs reuse it. Needs `dist/` (the npm script builds first).
 * Then, when the registry serves `@opencode-ai/plugin` at that version, type-checks src/ against it (the peer
 * dependency range claims those types fit). Prints one line per version at the end: passed, failed (the scenarios or
 * the types), or not installable and why. Exits 1 unless every version passed.
 */
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { COMPAT_VERSIONS } from "../test/compat/versions.js";
import { installOpencode, InstallError, type OpencodeInstall } from "../test/compat/install-opencode.js";
import { pluginTypeErrors } from "../test/compat/plugin-types.js";
import { REPO_ROOT } from "../test/support/opencode-cli.js";

type Outcome = { version: string; result: "passed" | "failed" | "install failed" | "does not start"; detail?: string };

const versions = process.argv.slice(2).filter((a) => a !== "--");
// Outside the repository on purpose: opencode-ai's launcher looks for its platform binary in every node_modules up the
// tree, so a release whose binary is missing would silently start the repository's own devDependency instead.
const root = resolve(process.env.OPENCODE_CI_AUTH_COMPAT_DIR || join(tmpdir(), "opencode-ci-auth-compat"));

function runScenarios(install: OpencodeInstall): Promise<number | null> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OPENCODE_CI_AUTH_OPENCODE_BIN: install.bin,
    OPENCODE_CI_AUTH_COMPAT_VERSION: install.version,
  };
  if (install.pluginDir) env.OPENCODE_CI_AUTH_OPENCODE_PLUGIN_DIR = install.pluginDir;
  else delete env.OPENCODE_CI_AUTH_OPENCODE_PLUGIN_DIR;
  if (install.cacheVersion) env.OPENCODE_CI_AUTH_OPENCODE_CACHE_VERSION = install.cacheVersion;
  else delete env.OPENCODE_CI_AUTH_OPENCODE_CACHE_VERSION;
  const vitest = join(REPO_ROOT, "node_modules", "vitest", "vitest.mjs");
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [vitest, "run", "--config", "test/compat/vitest.config.ts"], {
      cwd: REPO_ROOT,
      env,
      stdio: "inherit",
    });
    child.on("error", reject);
    child.on("close", done);
  });
}

async function check(version: string): Promise<Outcome> {
  process.stdout.write(`\n== opencode ${version}: installing under ${join(root, version)}\n`);
  let install: OpencodeInstall;
  try {
    install = await installOpencode(root, version);
  } catch (err) {
    if (!(err instanceof InstallError)) throw err;
    process.stdout.write(`${err.details}\n${err.message}\n`);
    return { version, result: err.step === "install" ? "install failed" : "does not start", detail: err.message };
  }
  const plugin = install.pluginDir
    ? `@opencode-ai/plugin@${version}`
    : "@opencode-ai/plugin of the devDependencies (the registry has none at this version)";
  process.stdout.write(`== opencode ${version}: running the core scenarios (config dir prepared with ${plugin})\n`);
  const code = await runScenarios(install);
  if (code !== 0) return { version, result: "failed", detail: `the core scenarios failed (vitest exited ${code})` };
  if (!install.pluginDir)
    return {
      version,
      result: "passed",
      detail: `the core scenarios; types not checked (the registry has no @opencode-ai/plugin@${version})`,
    };
  process.stdout.write(`== opencode ${version}: type-checking src/ against @opencode-ai/plugin@${version}\n`);
  const errors = await pluginTypeErrors(REPO_ROOT, install.pluginDir, install.dir);
  if (errors.length > 0) {
    process.stdout.write(`${errors.join("\n")}\n`);
    return {
      version,
      result: "failed",
      detail: `src/ does not type-check against @opencode-ai/plugin@${version} (${errors.length} errors)`,
    };
  }
  return { version, result: "passed", detail: `the core scenarios, and src/ type-checks against @opencode-ai/plugin@${version}` };
}

const outcomes: Outcome[] = [];
for (const version of versions.length > 0 ? versions : COMPAT_VERSIONS) outcomes.push(await check(version));

process.stdout.write("\nopencode compatibility (core scenarios):\n");
for (const o of outcomes) process.stdout.write(`  ${o.version.padEnd(10)} ${o.result}${o.detail ? `: ${o.detail}` : ""}\n`);
process.exitCode = outcomes.every((o) => o.result === "passed") ? 0 : 1;
