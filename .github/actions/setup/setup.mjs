#!/usr/bin/env node
// Helper of the opencode-ci-auth setup action (action.yml beside it). Pure Node, no dependencies, any OS:
//   validate  check the inputs (INPUT_* variables) before anything reaches npm
//   resolve   pick ONE exact version from `npm view --json` (PLUGIN_VIEW, OPENCODE_VIEW) and compute the directories
//             opencode loads the plugin from, the cache key and the install locations (step outputs)
//   verify    exit 0 when every directory in PATHS holds exactly VERSION, complete
//   inventory list the packages of the install in PATHS, for `npm pack`, into the check directory given (specs)
//   check     exit 0 when every file of that install is the file of its package's published tarball, each tarball
//             matches the registry's integrity and `npm ls` finds no problem (content-check.mjs); else say why
//   publish   copy the install in STAGING into every directory in PATHS (each replaced whole, then verified)
//   reset     make the directory given an empty one
// npm itself is only ever run from the action's bash steps, so no argument passes through cmd.exe on Windows.
import { createHash, randomUUID } from "node:crypto";
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

import { Mismatch, differences, forgetNpmRecords, integrityOf, inventory, tarballFiles } from "./content-check.mjs";

export const PLUGIN = "opencode-ci-auth";
/** Bumped when the layout of the prepared directories changes, so an old cache entry is never restored. */
const LAYOUT = "v2";
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
/** Versions, ranges and dist-tags only: no `file:`, `git+…`, URLs, aliases, paths, quotes or shell syntax. */
const SPEC = /^[0-9A-Za-z^~<>=*][0-9A-Za-z.+\-^~<>=|* ]{0,99}$/;
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]{0,213}$/;

/** A workflow-command-safe rendering of a value (the runner's own escaping for messages). */
function escapeData(value) {
  return String(value).replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

/** A problem to report as the step's error annotation. */
export class SetupError extends Error {}

function fail(message) {
  throw new SetupError(message);
}

function env(name, fallback = "") {
  const value = process.env[name];
  return value === undefined ? fallback : value.trim();
}

function setOutputs(outputs) {
  const file = process.env.GITHUB_OUTPUT;
  if (!file) fail("GITHUB_OUTPUT is not set: this script runs as a step of the setup action");
  for (const [name, value] of Object.entries(outputs)) {
    const text = String(value);
    const delimiter = `ghadelimiter_${randomUUID()}`;
    appendFileSync(file, text.includes("\n") ? `${name}<<${delimiter}\n${text}\n${delimiter}\n` : `${name}=${text}\n`);
  }
}

function booleanInput(name) {
  const value = env(name).toLowerCase();
  if (value !== "true" && value !== "false")
    fail(
      `${name
        .replace(/^INPUT_/, "")
        .toLowerCase()
        .replaceAll("_", "-")} must be "true" or "false", not "${env(name)}"`,
    );
  return value === "true";
}

function specInput(name, label) {
  const value = env(name);
  if (!SPEC.test(value)) {
    fail(`${label} must be a version, a range or a dist-tag (such as 0.2.1, ^0.2.0 or latest), not "${value}"`);
  }
  return value;
}

export function compareSemver(a, b) {
  const split = (v) => {
    const [main, pre] = v.split("+")[0].split(/-(.*)/s);
    return { main: main.split(".").map(Number), pre: pre === undefined ? [] : pre.split(".") };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) if (x.main[i] !== y.main[i]) return x.main[i] - y.main[i];
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return 0;
}

/**
 * The one version `npm view --json <pkg>@<spec> version` stands for: its only answer for an exact version or a
 * dist-tag, the highest of the list it prints for a range.
 */
export function pickVersion(viewJson, pkg, spec) {
  let parsed;
  try {
    parsed = viewJson.trim() === "" ? [] : JSON.parse(viewJson);
  } catch {
    fail(`npm view ${pkg}@${spec} did not print JSON: ${viewJson.slice(0, 200)}`);
  }
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
    const error = parsed.error ?? {};
    fail(`no published version of ${pkg} matches "${spec}" (npm: ${error.code ?? "?"} ${error.summary ?? ""})`.trim());
  }
  const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => typeof v === "string" && SEMVER.test(v));
  if (versions.length === 0) fail(`no published version of ${pkg} matches "${spec}"`);
  return versions.sort(compareSemver).at(-1);
}

/** opencode's own file-name rule for a package spec (`<>:"|?*` and control characters become `_`, on Windows only). */
export function sanitize(spec, platform = process.platform) {
  if (platform !== "win32") return spec;
  return Array.from(spec, (c) => ('<>:"|?*'.includes(c) || c.charCodeAt(0) < 32 ? "_" : c)).join("");
}

/** `$XDG_CACHE_HOME/opencode/packages`, else `~/.cache/opencode/packages`, on every OS (opencode uses xdg-basedir). */
export function packagesDir(environment = process.env) {
  return join(environment.XDG_CACHE_HOME || join(homedir(), ".cache"), "opencode", "packages");
}

/**
 * The plugin specs a config may use to get the resolved version without a download: the bare name (opencode reads it
 * as `<name>@latest`), the exact version, and the spec given to the action. One directory per spec.
 */
export function pluginSpecs(requested, version) {
  return [...new Set(["latest", version, requested])].map((s) => `${PLUGIN}@${s}`);
}

function pathsFromEnv() {
  const paths = env("PATHS")
    .split(/\r?\n/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (paths.length === 0) fail("PATHS is empty");
  return paths;
}

/** Why `dir` does not hold exactly `version` of the plugin, complete; undefined when it does. */
export function problemWith(dir, version) {
  const pkgDir = join(dir, "node_modules", PLUGIN);
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  } catch {
    return `${pkgDir} is missing`;
  }
  if (manifest.version !== version) return `${pkgDir} holds ${manifest.version}, not ${version}`;
  const entry = manifest.exports?.["."]?.default ?? manifest.main ?? "index.js";
  if (!existsSync(join(pkgDir, entry))) return `${join(pkgDir, entry)} is missing`;
  for (const dependency of Object.keys(manifest.dependencies ?? {})) {
    const nested = join(pkgDir, "node_modules", dependency, "package.json");
    const hoisted = join(dir, "node_modules", dependency, "package.json");
    if (!existsSync(nested) && !existsSync(hoisted)) return `${dir} lacks the dependency ${dependency}`;
  }
  return undefined;
}

function validate() {
  specInput("INPUT_VERSION", "version");
  booleanInput("INPUT_CACHE");
  booleanInput("INPUT_PREPARE");
  if (booleanInput("INPUT_INSTALL_OPENCODE")) {
    const name = env("INPUT_OPENCODE_PACKAGE");
    if (!PACKAGE_NAME.test(name)) fail(`opencode-package must be an npm package name, not "${name}"`);
    specInput("INPUT_OPENCODE_VERSION", "opencode-version");
  }
}

function resolve() {
  validate();
  const requested = env("INPUT_VERSION");
  const version = pickVersion(env("PLUGIN_VIEW"), PLUGIN, requested);
  const installOpencode = booleanInput("INPUT_INSTALL_OPENCODE");
  const opencodePackage = env("INPUT_OPENCODE_PACKAGE");
  const opencodeVersion = installOpencode ? pickVersion(env("OPENCODE_VIEW"), opencodePackage, env("INPUT_OPENCODE_VERSION")) : "";

  const specs = pluginSpecs(requested, version);
  const dirs = [...new Set(specs.map((s) => join(packagesDir(), sanitize(s))))];
  const work = join(process.env.RUNNER_TEMP || tmpdir(), "opencode-ci-auth-setup");
  const opencodePrefix = join(work, `${opencodePackage.replace("/", "+")}-${opencodeVersion}`);
  const os = process.env.RUNNER_OS || process.platform;
  const arch = process.env.RUNNER_ARCH || process.arch;
  const key = `${PLUGIN}-${LAYOUT}-${os}-${arch}-${version}-${createHash("sha256").update(dirs.join("\n")).digest("hex").slice(0, 16)}`;

  process.stdout.write(
    `${PLUGIN} "${requested}" resolved to ${version}\n` +
      `opencode will load ${version} with no download for the plugin spec${specs.length > 1 ? "s" : ""} ${["opencode-ci-auth", ...specs].join(", ")}\n` +
      dirs.map((d) => `  ${d}\n`).join("") +
      (installOpencode ? `${opencodePackage} "${env("INPUT_OPENCODE_VERSION")}" resolved to ${opencodeVersion}\n` : ""),
  );
  setOutputs({
    version,
    "opencode-version": opencodeVersion,
    "node-path": process.execPath,
    paths: dirs.join("\n"),
    key,
    staging: join(work, `plugin-${version}`),
    check: join(work, `check-${version}`),
    "opencode-prefix": opencodePrefix,
    "opencode-bin": join(opencodePrefix, "node_modules", ".bin"),
    // `opencode-ci-auth prepare --cache-dir`: opencode's plugin SDK, one entry per opencode version (known only when
    // the action installs opencode, so only then is it cached).
    "sdk-cache": join(work, "opencode-sdk"),
    "sdk-key": installOpencode ? `${PLUGIN}-sdk-${LAYOUT}-${os}-${arch}-${opencodeVersion}` : "",
  });
}

function verify() {
  const version = env("VERSION");
  const problems = pathsFromEnv()
    .map((dir) => problemWith(dir, version))
    .filter(Boolean);
  for (const problem of problems) process.stdout.write(`not in place: ${problem}\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}

/** The packages of the install in every directory of PATHS; the same in each, or a Mismatch. */
function packagesInPlace(version) {
  const [first, ...others] = pathsFromEnv();
  const packages = inventory(first, PLUGIN, version);
  for (const dir of others) {
    if (JSON.stringify(inventory(dir, PLUGIN, version)) !== JSON.stringify(packages))
      throw new Mismatch(`${dir} holds other packages than ${first}`);
  }
  return packages;
}

/** Says why the install in place is not used, and that it is replaced (the step then installs fresh). */
function refuse(version, problems) {
  for (const problem of problems) process.stdout.write(`refused: ${problem}\n`);
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""}, listed above)` : "";
  process.stdout.write(
    `::warning title=opencode-ci-auth setup::${escapeData(
      `The install of ${PLUGIN}@${version} found in place (restored from the cache, or left by an earlier job) does not match the registry's release: ${problems[0]}${more}. It is not used: ${PLUGIN}@${version} is installed fresh.`,
    )}\n`,
  );
  process.exitCode = 1;
}

function inventoryCommand() {
  const version = env("VERSION");
  const check = process.argv[3];
  if (!check) fail("inventory needs the check directory");
  try {
    for (const dir of pathsFromEnv()) forgetNpmRecords(dir);
    const specs = [...new Set(packagesInPlace(version).map((p) => `${p.name}@${p.version}`))];
    writeFileSync(join(check, "specs"), specs.map((s) => `${s}\n`).join(""));
    process.stdout.write(`checking ${specs.length} package${specs.length === 1 ? "" : "s"} in place against the registry\n`);
  } catch (error) {
    refuse(version, [reasonFrom(error)]);
  }
}

/** A Mismatch, or a file the check could not read (a system error), is a reason to refuse; anything else is a bug. */
function reasonFrom(error) {
  if (error instanceof Mismatch || (error instanceof Error && typeof error.code === "string")) return error.message;
  throw error;
}

function readJson(file, what) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    throw new Mismatch(`${what} did not print JSON`);
  }
}

/** The problems of the install in place (see content-check.mjs), given what npm pack, npm view and npm ls printed. */
function contentProblems(version, check) {
  const packages = packagesInPlace(version);
  const packed = new Map(readJson(join(check, "pack.json"), "npm pack").map((p) => [p.id, p]));
  const registryIntegrity = readJson(join(check, "registry.json"), `npm view ${PLUGIN}@${version} dist.integrity`);
  const problems = [];
  const published = new Map();
  for (const pkg of packages) {
    const spec = `${pkg.name}@${pkg.version}`;
    if (published.has(spec)) continue;
    const entry = packed.get(spec);
    if (!entry) throw new Mismatch(`npm pack fetched no tarball for ${spec}: it is not a release of the registry`);
    const bytes = readFileSync(join(check, "tarballs", entry.filename));
    // npm checked the download against the registry's dist.integrity; this ties the file read here to that value.
    if (integrityOf(bytes) !== entry.integrity) throw new Mismatch(`the tarball of ${spec} does not hash to the integrity npm reported`);
    if (pkg.name === PLUGIN && entry.integrity !== registryIntegrity) {
      throw new Mismatch(`the tarball of ${spec} does not match the registry's dist.integrity ${registryIntegrity}`);
    }
    published.set(spec, tarballFiles(bytes));
  }
  for (const dir of pathsFromEnv()) {
    for (const pkg of packages) problems.push(...differences(dir, pkg, published.get(`${pkg.name}@${pkg.version}`)));
  }
  // The same releases could still form another tree than npm's (an older release of a dependency, out of its range).
  const listed = readJson(join(check, "ls.json"), "npm ls");
  for (const problem of listed.problems ?? []) problems.push(`npm ls: ${problem}`);
  if (listed.dependencies?.[PLUGIN]?.version !== version)
    problems.push(`npm ls does not find ${PLUGIN}@${version} at the top of the install`);
  return { problems, packages: packages.length, specs: published.size };
}

function checkCommand() {
  const version = env("VERSION");
  const check = process.argv[3];
  if (!check) fail("check needs the check directory");
  let result;
  try {
    result = contentProblems(version, check);
  } catch (error) {
    result = { problems: [reasonFrom(error)] };
  }
  if (result.problems.length > 0) return refuse(version, result.problems);
  process.stdout.write(
    `the install in place matches the registry: ${result.packages} package folders, each the files of its published tarball (${result.specs} releases, integrity checked)\n`,
  );
}

function publish() {
  const version = env("VERSION");
  const staging = env("STAGING");
  const staged = problemWith(staging, version);
  if (staged) fail(`npm install did not produce ${PLUGIN}@${version}: ${staged}`);
  for (const dir of pathsFromEnv()) {
    // opencode only checks that node_modules/<name> exists, so a half-copied directory would load nothing, silently:
    // copy beside the target, then swap it in whole.
    const next = `${dir}.next-${process.pid}`;
    const previous = `${dir}.previous-${process.pid}`;
    rmSync(next, { recursive: true, force: true });
    cpSync(staging, next, { recursive: true, verbatimSymlinks: true });
    if (existsSync(dir)) renameSync(dir, previous);
    renameSync(next, dir);
    rmSync(previous, { recursive: true, force: true });
    const problem = problemWith(dir, version);
    if (problem) fail(problem);
    process.stdout.write(`${PLUGIN}@${version} -> ${dir}\n`);
  }
  rmSync(staging, { recursive: true, force: true });
}

/** An empty directory at the path given (removed first if it exists): file work in Node, never bash, on every OS. */
function reset() {
  const dir = process.argv[3];
  if (!dir) fail("reset needs a directory");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

const commands = { validate, resolve, verify, inventory: inventoryCommand, check: checkCommand, publish, reset };
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const command = process.argv[2];
  try {
    const run = commands[command];
    if (!run) fail(`unknown command "${command}" (expected ${Object.keys(commands).join(", ")})`);
    run();
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    process.stdout.write(`::error title=opencode-ci-auth setup::${escapeData(error.message)}\n`);
    process.exitCode = 1;
  }
}
