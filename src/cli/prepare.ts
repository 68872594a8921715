/**
 * `prepare`: puts `@opencode-ai/plugin`, at the installed opencode's version, into each config dir opencode installs it
 * into, in the form opencode accepts without installing again (docs/performance.md, "What makes opencode install into
 * its config directories"). opencode 1.18 skips its install when `<dir>/node_modules` exists and `package-lock.json`
 * lists every dependency of `package.json` (names only); a fresh CI runner has neither, and pays ~5 s per job.
 *
 * An install kept in `--cache-dir` (which a CI cache restores) is code that opencode will load: it is used only when
 * every file of every package in it is the file of that package's published tarball, fetched fresh from the registry.
 */
import { execFile } from "node:child_process";
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { integrityOf, tarballFiles } from "./package-tarball.js";

export const SDK = "@opencode-ai/plugin";
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]{0,213}$/;
/** The files a prepared directory holds besides opencode's own (opencode.json, .gitignore, agents…). */
const PREPARED = ["package.json", "package-lock.json", "node_modules"];

/** A failed step of `prepare`; the message names the step and the fix. */
export class PrepareError extends Error {}

export interface PrepareOptions {
  /** `--opencode-version`; else `<opencodeBin> --version`. */
  opencodeVersion?: string | undefined;
  opencodeBin?: string | undefined;
  /** The config dirs to prepare (`--dir`, or opencode's own list). */
  dirs: string[];
  cacheDir?: string | undefined;
  env: NodeJS.ProcessEnv;
  write: (text: string) => void;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { env, cwd, maxBuffer: 64 * 1024 * 1024, windowsHide: true }, (error, stdout, stderr) => {
      const code = (error as NodeJS.ErrnoException | null)?.code;
      resolve({
        code: error ? (typeof code === "number" ? code : 1) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
        missing: code === "ENOENT",
      });
    });
  });
}

/** The last lines of npm's output, enough to see its error code, without its progress noise. */
function npmTail(result: Run): string {
  const lines = `${result.stderr}\n${result.stdout}`.split("\n").filter((l) => /npm (error|ERR!)/.test(l));
  return lines.slice(0, 6).join("\n") || result.stderr.trim().split("\n").slice(-4).join("\n");
}

function unreachable(result: Run): boolean {
  return /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|ECONNRESET|network|fetch failed/i.test(result.stderr + result.stdout);
}

/**
 * npm as a command line: `npm` on PATH; on Windows, whose `npm.cmd` Node cannot start without a shell, the npm that
 * ships beside node.exe, run by node itself.
 */
function npmCommand(): { command: string; prefix: string[] } {
  if (process.platform !== "win32") return { command: "npm", prefix: [] };
  const cli = join(dirname(process.execPath), "node_modules", "npm", "bin", "npm-cli.js");
  return existsSync(cli) ? { command: process.execPath, prefix: [cli] } : { command: "npm", prefix: [] };
}

async function npm(args: string[], env: NodeJS.ProcessEnv, step: string): Promise<Run> {
  const { command, prefix } = npmCommand();
  const result = await run(command, [...prefix, ...args], env);
  if (result.missing)
    throw new PrepareError(
      `prepare: ${step}: npm was not found on PATH. Install Node.js with npm (opencode-ci-auth prepare runs npm to install ${SDK}).`,
    );
  if (result.code !== 0 && unreachable(result)) {
    throw new PrepareError(
      `prepare: ${step}: the npm registry (${env.npm_config_registry || "npm's configured registry"}) could not be reached. Check the network or the registry setting (npm config get registry), then run prepare again.\n${npmTail(result)}`,
    );
  }
  return result;
}

/** The opencode version to match: given, or what `opencode --version` prints. */
export async function opencodeVersion(options: Pick<PrepareOptions, "opencodeVersion" | "opencodeBin" | "env">): Promise<string> {
  if (options.opencodeVersion !== undefined) {
    if (!SEMVER.test(options.opencodeVersion))
      throw new PrepareError(`prepare: --opencode-version must be an exact version such as 1.18.33, not "${options.opencodeVersion}"`);
    return options.opencodeVersion;
  }
  const bin = options.opencodeBin ?? "opencode";
  const result = await run(bin, ["--version"], options.env);
  if (result.missing)
    throw new PrepareError(
      `prepare: opencode version: "${bin}" was not found. Install opencode first (npm install -g opencode-ai), put it on PATH, or pass --opencode-version VERSION.`,
    );
  const version = result.stdout.trim().split("\n").at(-1)?.trim() ?? "";
  if (result.code !== 0 || !SEMVER.test(version)) {
    throw new PrepareError(
      `prepare: opencode version: "${bin} --version" ${result.code !== 0 ? `exited with ${result.code}` : `printed "${version.slice(0, 80)}"`}, not a version. Check the opencode install, or pass --opencode-version VERSION.`,
    );
  }
  return version;
}

const manifest = (version: string) => ({ dependencies: { [SDK]: version } });

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, "utf8")) as unknown;
}

/** Why opencode would install into `dir`, or would load another version than `version` from it; undefined when neither. */
export async function notPrepared(dir: string, version: string): Promise<string | undefined> {
  const lock = (await readJson(join(dir, "package-lock.json")).catch(() => undefined)) as
    { packages?: Record<string, { dependencies?: Record<string, string> }> } | undefined;
  if (!lock) return `${join(dir, "package-lock.json")} is missing`;
  const pkg = (await readJson(join(dir, "package.json")).catch(() => undefined)) as { dependencies?: Record<string, string> } | undefined;
  if (pkg?.dependencies?.[SDK] !== version) return `${join(dir, "package.json")} does not pin ${SDK} ${version}`;
  if (lock.packages?.[""]?.dependencies?.[SDK] !== version) return `${join(dir, "package-lock.json")} does not list ${SDK} ${version}`;
  const installed = (await readJson(join(dir, "node_modules", SDK, "package.json")).catch(() => undefined)) as
    { version?: string } | undefined;
  if (installed?.version !== version) return `${join(dir, "node_modules", SDK)} ${installed ? `holds ${installed.version}` : "is missing"}`;
  return undefined;
}

/** Other dependencies a config dir's package.json declares: that dir belongs to its owner's own install. */
async function foreignDependencies(dir: string): Promise<string[]> {
  const pkg = (await readJson(join(dir, "package.json")).catch(() => undefined)) as
    Record<string, Record<string, string> | undefined> | undefined;
  if (!pkg) return [];
  const names = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"].flatMap((k) => Object.keys(pkg[k] ?? {}));
  return names.filter((n) => n !== SDK);
}

/** npm's own install, as opencode's (scripts off, exact version saved), into `dir`; no links to commands. */
async function install(dir: string, version: string, env: NodeJS.ProcessEnv): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), `${JSON.stringify(manifest(version), null, 2)}\n`);
  const result = await npm(
    [
      "install",
      "--prefix",
      dir,
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      "--no-bin-links",
      "--prefer-online",
      "--save-exact",
      "--",
      `${SDK}@${version}`,
    ],
    env,
    `npm install ${SDK}@${version}`,
  );
  if (result.code !== 0) {
    if (/E404|ETARGET|No matching version/i.test(result.stderr)) {
      throw new PrepareError(
        `prepare: npm install ${SDK}@${version}: the registry has no ${SDK} ${version}, the version that matches opencode ${version}. Check the opencode version (opencode --version, --opencode-version) and the registry setting.`,
      );
    }
    throw new PrepareError(`prepare: npm install ${SDK}@${version} failed (exit ${result.code}). npm said:\n${npmTail(result)}`);
  }
  await rm(join(dir, "node_modules", ".package-lock.json"), { force: true });
  const installed = (await readJson(join(dir, "node_modules", SDK, "package.json")).catch(() => undefined)) as
    { version?: string } | undefined;
  if (installed?.version !== version)
    throw new PrepareError(
      `prepare: npm install ${SDK}@${version} installed ${installed?.version ?? "nothing"}: version mismatch. Run prepare again; if it persists, check the registry setting.`,
    );
}

interface Pkg {
  path: string;
  name: string;
  version: string;
}

/** The package folders under `<dir>/<modules>`, depth first; throws on anything npm does not put there. */
async function inventory(dir: string, modules: string, found: Pkg[]): Promise<Pkg[]> {
  for (const entry of (await readdir(join(dir, modules))).sort()) {
    const names = entry.startsWith("@") ? (await readdir(join(dir, modules, entry))).sort().map((s) => `${entry}/${s}`) : [entry];
    if (entry.startsWith("@")) await realDirectory(join(dir, modules, entry));
    for (const name of names) {
      const path = `${modules}/${name}`;
      await realDirectory(join(dir, path));
      const pkg = (await readJson(join(dir, path, "package.json")).catch(() => undefined)) as
        { name?: unknown; version?: unknown } | undefined;
      if (!pkg || pkg.name !== name || !NAME.test(name) || typeof pkg.version !== "string" || !SEMVER.test(pkg.version)) {
        throw new Error(`${join(dir, path)} is not the package folder npm makes for ${name}`);
      }
      found.push({ path, name, version: pkg.version });
      if ((await readdir(join(dir, path))).includes("node_modules")) await inventory(dir, `${path}/node_modules`, found);
    }
  }
  return found;
}

async function realDirectory(path: string): Promise<void> {
  const stat = await lstat(path);
  if (!stat.isDirectory())
    throw new Error(`${path} is ${stat.isSymbolicLink() ? "a symbolic link" : "not a directory"}, which npm does not make there`);
}

/** The regular files of the package folder, by path inside it, without its own node_modules. */
async function packageFiles(root: string, found = new Map<string, string>(), inside = ""): Promise<Map<string, string>> {
  for (const entry of (await readdir(join(root, inside))).sort()) {
    const relative = inside ? `${inside}/${entry}` : entry;
    if (relative === "node_modules") continue;
    const stat = await lstat(join(root, relative));
    if (stat.isDirectory()) await packageFiles(root, found, relative);
    else if (stat.isFile()) found.set(relative, join(root, relative));
    else throw new Error(`${join(root, relative)} is not a regular file, which npm does not extract`);
  }
  return found;
}

/**
 * Why the install in `dir` is not, file for file, the registry's release of `@opencode-ai/plugin@version` and its
 * dependencies; undefined when it is. The tarballs come from the registry through a fresh npm cache, so neither the
 * install nor an npm cache restored beside it chooses them; npm checks each against the registry's dist.integrity.
 */
export async function cachedInstallProblem(dir: string, version: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  let packages: Pkg[];
  let lock: {
    packages?: Record<
      string,
      { version?: string; integrity?: string; resolved?: string; optional?: boolean; dependencies?: Record<string, string> }
    >;
  };
  try {
    const top = (await readdir(dir)).sort();
    const unexpected = top.filter((e) => !PREPARED.includes(e));
    if (unexpected.length > 0 || top.length !== PREPARED.length)
      return `it holds ${top.join(", ") || "nothing"}, not exactly ${PREPARED.join(", ")}`;
    if (JSON.stringify(await readJson(join(dir, "package.json"))) !== JSON.stringify(manifest(version)))
      return `package.json is not ${JSON.stringify(manifest(version))}`;
    lock = (await readJson(join(dir, "package-lock.json"))) as typeof lock;
    if (JSON.stringify(lock.packages?.[""]?.dependencies) !== JSON.stringify(manifest(version).dependencies))
      return `package-lock.json does not list only ${SDK} ${version}`;
    packages = await inventory(dir, "node_modules", []);
  } catch (error) {
    return (error as Error).message;
  }
  if (!packages.some((p) => p.path === `node_modules/${SDK}` && p.version === version)) return `node_modules/${SDK} is not ${version}`;

  const work = await mkdtemp(join(tmpdir(), "opencode-ci-auth-prepare-check-"));
  try {
    const specs = [...new Set(packages.map((p) => `${p.name}@${p.version}`))];
    const freshEnv = { ...env, npm_config_cache: join(work, "npm-cache") };
    const packed = await npm(
      ["pack", "--json", "--ignore-scripts", "--prefer-online", "--pack-destination", work, "--", ...specs],
      freshEnv,
      "checking the cached install (npm pack)",
    );
    if (packed.code !== 0)
      return `npm could not fetch the published tarball of every package in it (${npmTail(packed).split("\n")[0] ?? "npm pack failed"})`;
    const entries = new Map(
      (JSON.parse(packed.stdout) as Array<{ id: string; filename: string; integrity: string }>).map((e) => [e.id, e]),
    );
    for (const pkg of packages) {
      const spec = `${pkg.name}@${pkg.version}`;
      const entry = entries.get(spec);
      if (!entry) return `the registry has no ${spec}`;
      const bytes = await readFile(join(work, entry.filename));
      if (integrityOf(bytes) !== entry.integrity) return `the tarball of ${spec} does not hash to the integrity npm checked`;
      const locked = lock.packages?.[pkg.path];
      if (!locked || locked.version !== pkg.version || locked.integrity !== entry.integrity)
        return `package-lock.json does not record ${spec} with the registry's integrity`;
      const published = tarballFiles(bytes);
      const onDisk = await packageFiles(join(dir, pkg.path));
      for (const [path, content] of published) {
        const file = onDisk.get(path);
        if (file === undefined) return `${pkg.path}/${path} is missing`;
        if (!(await readFile(file)).equals(content)) return `${pkg.path}/${path} differs from the file in ${spec}'s published tarball`;
      }
      for (const path of onDisk.keys()) if (!published.has(path)) return `${pkg.path}/${path} is not in ${spec}'s published tarball`;
    }
    // Entries of the lockfile with no folder: only the optional packages of other platforms, which npm skipped.
    const onDiskPaths = new Set(packages.map((p) => p.path));
    for (const [path, entry] of Object.entries(lock.packages ?? {})) {
      if (path !== "" && !onDiskPaths.has(path) && !entry.optional) return `package-lock.json records ${path}, which is not installed`;
    }
    return undefined;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Copies the install in `from` into the config dir `to`, beside opencode's own files; the lockfile last. */
async function publish(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  const next = join(to, `node_modules.next-${process.pid}`);
  await rm(next, { recursive: true, force: true });
  await cp(join(from, "node_modules"), next, { recursive: true, verbatimSymlinks: true });
  await rm(join(to, "package-lock.json"), { force: true });
  await rm(join(to, "node_modules"), { recursive: true, force: true });
  await rename(next, join(to, "node_modules"));
  await cp(join(from, "package.json"), join(to, "package.json"));
  // Last: opencode skips its install only once the lockfile lists the package, so a half-copied dir is reinstalled.
  await cp(join(from, "package-lock.json"), join(to, "package-lock.json"));
}

export async function runPrepare(options: PrepareOptions): Promise<void> {
  const version = await opencodeVersion(options);
  const say = (line: string) => options.write(`opencode-ci-auth prepare: ${line}\n`);
  say(`opencode ${version}: ${SDK}@${version} into ${options.dirs.length} config dir${options.dirs.length === 1 ? "" : "s"}`);

  const todo: string[] = [];
  for (const dir of options.dirs) {
    const foreign = await foreignDependencies(dir);
    if (foreign.length > 0) {
      say(`skipped ${dir}: its package.json also declares ${foreign.join(", ")}, so it is its owner's install (opencode installs it)`);
      continue;
    }
    const problem = await notPrepared(dir, version);
    if (problem) todo.push(dir);
    else say(`${dir} is already prepared`);
  }
  if (todo.length === 0) return;

  let source: string;
  let temporary: string | undefined;
  if (options.cacheDir) {
    source = join(options.cacheDir, `${SDK.replace("/", "+")}@${version}`);
    const present = await lstat(source).then(
      () => true,
      () => false,
    );
    const problem = present ? await cachedInstallProblem(source, version, options.env) : "absent";
    if (problem === undefined) {
      say(`the cached install in ${source} matches the registry, file for file`);
    } else {
      if (present) say(`refused the cached install in ${source}: ${problem}. It is not used: installing ${SDK}@${version} fresh.`);
      await install(source, version, options.env);
      say(`installed ${SDK}@${version} into the cache ${source}`);
    }
  } else {
    temporary = await mkdtemp(join(tmpdir(), "opencode-ci-auth-prepare-"));
    source = join(temporary, "install");
    await install(source, version, options.env);
  }
  try {
    for (const dir of todo) {
      await publish(source, dir).catch((e: NodeJS.ErrnoException) => {
        throw new PrepareError(
          `prepare: copying into ${dir} failed (${e.code ?? e.message}). Check that the directory is writable, or pass --dir for the dirs to prepare.`,
        );
      });
      const problem = await notPrepared(dir, version);
      if (problem)
        throw new PrepareError(
          `prepare: ${dir}: after the copy, ${problem}. Check that the directory is writable, then run prepare again.`,
        );
      say(`prepared ${dir}`);
    }
  } finally {
    if (temporary) await rm(temporary, { recursive: true, force: true });
  }
}
