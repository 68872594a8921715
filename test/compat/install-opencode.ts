/**
 * Installs one exact opencode release (npm `opencode-ai`) into a directory of its own for `npm run test:compat`,
 * with the `@opencode-ai/plugin` of the same version when the registry serves one (opencode puts that version into
 * its config dir; the e2e harness pre-populates it from here). A directory that already holds a working install of
 * that version is reused. A failure says which step failed: the npm install, or starting the installed CLI (a
 * release installs without error even when the registry lacks its platform binary, then cannot start).
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { arch, platform, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const EXACT_VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

export interface OpencodeInstall {
  version: string;
  dir: string;
  /** The `opencode` command of this install. */
  bin: string;
  /** `@opencode-ai/plugin` at the same version, if the registry serves it. */
  pluginDir?: string;
  /** The value of opencode's cache `version` file, for releases that keep one (before 1.14). */
  cacheVersion?: string;
}

/** `message` is one line for the summary; `details` is the tool output behind it. */
export class InstallError extends Error {
  constructor(
    readonly step: "install" | "start",
    message: string,
    readonly details = "",
  ) {
    super(message);
    this.name = "InstallError";
  }
}

function tail(text: string, lines = 15): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** npm's last line that says what went wrong (not the pointer to its log file). */
function npmReason(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/^(npm (error|ERR!) )+/, "").trim());
  return lines.filter((l) => l && !/^A complete log of this run/.test(l)).at(-1) ?? "see npm's output";
}

async function installedVersion(packageDir: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** Does the registry serve `@opencode-ai/plugin@<version>`? (`npm view` prints nothing for a missing version.) */
async function pluginPublished(version: string): Promise<boolean> {
  try {
    const { stdout } = await run(NPM, ["view", "--json", `@opencode-ai/plugin@${version}`, "version"]);
    return stdout.trim() !== "" && JSON.parse(stdout) === version;
  } catch {
    return false;
  }
}

/** The `opencode-<os>-<arch>*` packages npm put beside opencode-ai, with their versions: what a start failure needs. */
async function platformPackages(dir: string): Promise<string> {
  const names = (await readdir(join(dir, "node_modules")).catch(() => [] as string[])).filter(
    (n) => n.startsWith("opencode-") && n !== "opencode-ai",
  );
  const found = await Promise.all(names.map(async (n) => `${n}@${(await installedVersion(join(dir, "node_modules", n))) ?? "?"}`));
  return found.length > 0 ? found.join(", ") : "none";
}

type Started = { ok: true; version: string; cacheVersion?: string } | { ok: false; output: string };

/** `opencode --version` in an empty home; also reads the cache `version` file that releases before 1.14 write there. */
async function start(bin: string): Promise<Started> {
  const home = await mkdtemp(join(tmpdir(), "opencode-ci-auth-compat-"));
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CACHE_HOME: join(home, "cache"),
    XDG_CONFIG_HOME: join(home, "config"),
    XDG_DATA_HOME: join(home, "data"),
    XDG_STATE_HOME: join(home, "state"),
    OPENCODE_DISABLE_AUTOUPDATE: "1",
  };
  try {
    const { stdout } = await run(bin, ["--version"], { env, timeout: 60_000 });
    const cacheVersion = (await readFile(join(env.XDG_CACHE_HOME, "opencode", "version"), "utf8").catch(() => "")).trim();
    return { ok: true, version: stdout.trim(), ...(cacheVersion ? { cacheVersion } : {}) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: tail(`${e.stderr ?? ""}\n${e.stdout ?? ""}`) || e.message };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Installs `opencode-ai@<version>` under `root/<version>` (or reuses it) and checks that it starts as that version. */
export async function installOpencode(root: string, version: string): Promise<OpencodeInstall> {
  if (!EXACT_VERSION.test(version)) throw new InstallError("install", `"${version}" is not an exact version (e.g. 1.18.33)`);
  const dir = join(root, version);
  const modules = join(dir, "node_modules");
  const bin = join(modules, ".bin", process.platform === "win32" ? "opencode.cmd" : "opencode");
  const pluginPath = join(modules, "@opencode-ai", "plugin");

  const reusable = (await installedVersion(join(modules, "opencode-ai"))) === version;
  if (!reusable) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "package.json"), JSON.stringify({ private: true, description: "opencode-ci-auth test:compat" }));
    const specs = [`opencode-ai@${version}`, ...((await pluginPublished(version)) ? [`@opencode-ai/plugin@${version}`] : [])];
    try {
      await run(NPM, ["install", "--no-audit", "--no-fund", "--no-package-lock", "--save-exact", ...specs], {
        cwd: dir,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new InstallError(
        "install",
        `npm install ${specs.join(" ")} failed: ${npmReason(e.stderr ?? e.message)}`,
        tail(e.stderr ?? e.message),
      );
    }
  }

  const started = await start(bin);
  if (!started.ok) {
    throw new InstallError(
      "start",
      `opencode-ai@${version} installed, but \`opencode --version\` failed. This machine is ${platform()}-${arch()}; ` +
        `platform packages installed: ${await platformPackages(dir)}.`,
      started.output,
    );
  }
  if (started.version !== version) {
    throw new InstallError(
      "start",
      `opencode-ai@${version} installed, but \`opencode --version\` printed "${started.version}" (its launcher found another release's binary). ` +
        `This machine is ${platform()}-${arch()}; platform packages installed: ${await platformPackages(dir)}.`,
    );
  }
  const pluginVersion = await installedVersion(pluginPath);
  return {
    version,
    dir,
    bin,
    ...(pluginVersion === version ? { pluginDir: pluginPath } : {}),
    ...(started.cacheVersion ? { cacheVersion: started.cacheVersion } : {}),
  };
}
