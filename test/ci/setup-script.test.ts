/**
 * The pure parts of the setup action's helper (.github/actions/setup/setup.mjs): how one exact version is picked
 * from `npm view --json`, and the directory names opencode uses on each OS. The end-to-end runs are in
 * setup-action.test.ts; this covers what Linux cannot run, such as the Windows file-name rule.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { afterAll, describe, expect, it } from "vitest";

import * as prepareTarball from "../../src/cli/package-tarball.js";
import { SETUP_ACTION } from "./support/job.js";

interface SetupModule {
  SetupError: new (message: string) => Error;
  compareSemver(a: string, b: string): number;
  pickVersion(viewJson: string, pkg: string, spec: string): string;
  sanitize(spec: string, platform?: string): string;
  packagesDir(environment?: NodeJS.ProcessEnv): string;
  pluginSpecs(requested: string, version: string): string[];
}
const setup = (await import(pathToFileURL(join(SETUP_ACTION, "setup.mjs")).href)) as SetupModule;

interface Package {
  path: string;
  name: string;
  version: string;
}
interface ContentCheckModule {
  Mismatch: new (message: string) => Error;
  tarballFiles(gzipped: Buffer): Map<string, Buffer>;
  integrityOf(bytes: Buffer): string;
  forgetNpmRecords(dir: string): void;
  inventory(dir: string, plugin: string, version: string): Package[];
  differences(dir: string, pkg: Package, published: Map<string, Buffer>, limit?: number): string[];
}
const check = (await import(pathToFileURL(join(SETUP_ACTION, "content-check.mjs")).href)) as ContentCheckModule;
const run = promisify(execFile);
const scratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-content-check-"));
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** Writes `files` (path → content) under `dir`. */
async function lay(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, ".."), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

/** A gzipped tarball made by GNU tar in `format`, of `files` under the folder `package/`. */
async function tarball(format: "ustar" | "pax" | "gnu", files: Record<string, string>): Promise<Buffer> {
  const dir = await mkdtemp(join(scratch, "tar-"));
  await lay(join(dir, "package"), files);
  await run("tar", [`--format=${format}`, "-czf", join(dir, "out.tgz"), "-C", dir, "package"]);
  return readFile(join(dir, "out.tgz"));
}

/** An install as npm lays it out for `{"dependencies":{"opencode-ci-auth":"1.2.3"}}`, with one nested dependency. */
async function install(): Promise<string> {
  const dir = await mkdtemp(join(scratch, "install-"));
  await lay(dir, {
    "package.json": JSON.stringify({ dependencies: { "opencode-ci-auth": "1.2.3" } }),
    "package-lock.json": "{}",
    "node_modules/.package-lock.json": "{}",
    "node_modules/opencode-ci-auth/package.json": JSON.stringify({ name: "opencode-ci-auth", version: "1.2.3" }),
    "node_modules/opencode-ci-auth/dist/index.js": "export default {};\n",
    "node_modules/@scope/dep/package.json": JSON.stringify({ name: "@scope/dep", version: "2.0.0" }),
    "node_modules/@scope/dep/node_modules/inner/package.json": JSON.stringify({ name: "inner", version: "0.1.0-rc.1" }),
  });
  return dir;
}

describe("setup.mjs", () => {
  it("orders versions as semver does, prereleases before their release", () => {
    const sorted = ["1.0.0", "0.10.0", "1.0.0-rc.1", "1.0.0-beta.11", "0.9.9", "1.0.0-beta.2", "1.0.0-beta"].sort(setup.compareSemver);
    expect(sorted).toEqual(["0.9.9", "0.10.0", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]);
  });

  it("picks the one version npm view names, or the highest of the versions a range matches", () => {
    expect(setup.pickVersion('"0.2.1"\n', "opencode-ci-auth", "latest")).toBe("0.2.1");
    expect(setup.pickVersion('["0.2.0", "0.2.1", "0.2.10", "0.2.9"]', "opencode-ci-auth", "^0.2.0")).toBe("0.2.10");
  });

  it("reports what npm view answered when nothing matches", () => {
    const error = JSON.stringify({ error: { code: "E404", summary: "No match found for version ^9" } });
    expect(() => setup.pickVersion(error, "opencode-ci-auth", "^9")).toThrow(
      new setup.SetupError('no published version of opencode-ci-auth matches "^9" (npm: E404 No match found for version ^9)'),
    );
    expect(() => setup.pickVersion("", "opencode-ci-auth", "^9")).toThrow(setup.SetupError);
    expect(() => setup.pickVersion("npm ERR! network", "opencode-ci-auth", "^9")).toThrow(/did not print JSON/);
  });

  it("prepares the bare name (@latest to opencode), the exact version and the spec given", () => {
    expect(setup.pluginSpecs("^0.2.0", "0.2.1")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.2.1", "opencode-ci-auth@^0.2.0"]);
    expect(setup.pluginSpecs("latest", "0.3.0")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.3.0"]);
    expect(setup.pluginSpecs("0.3.0", "0.3.0")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.3.0"]);
  });

  it('names directories as opencode does: verbatim, except <>:"|?* and control characters on Windows', () => {
    expect(setup.sanitize("opencode-ci-auth@>=0.2.0 <0.3.0", "linux")).toBe("opencode-ci-auth@>=0.2.0 <0.3.0");
    expect(setup.sanitize("opencode-ci-auth@>=0.2.0 <0.3.0", "darwin")).toBe("opencode-ci-auth@>=0.2.0 <0.3.0");
    expect(setup.sanitize("opencode-ci-auth@>=0.2.0 <0.3.0", "win32")).toBe("opencode-ci-auth@_=0.2.0 _0.3.0");
    expect(setup.sanitize("opencode-ci-auth@^0.2.0", "win32")).toBe("opencode-ci-auth@^0.2.0");
    expect(setup.sanitize('a:b"c|d?e*f\u0001', "win32")).toBe("a_b_c_d_e_f_");
  });

  it("finds opencode's package cache under XDG_CACHE_HOME, else ~/.cache, on every OS", () => {
    expect(setup.packagesDir({ XDG_CACHE_HOME: join("/", "xdg") })).toBe(join("/", "xdg", "opencode", "packages"));
    expect(setup.packagesDir({ XDG_CACHE_HOME: "" })).toBe(join(homedir(), ".cache", "opencode", "packages"));
    expect(setup.packagesDir({})).toBe(join(homedir(), ".cache", "opencode", "packages"));
  });
});

describe("content-check.mjs", () => {
  const LONG = `${"deep/".repeat(30)}file.js`;

  it.each([["ustar"], ["pax"], ["gnu"]] as const)(
    "reads the files of a %s tarball as npm extracts them, without the top folder",
    async (format) => {
      const files = { "package.json": "{}", "lib/a.js": "a", ...(format === "ustar" ? {} : { [LONG]: "long" }) };
      const read = check.tarballFiles(await tarball(format, files));
      expect(Object.fromEntries([...read].map(([path, bytes]) => [path, bytes.toString()]))).toEqual(files);
      // `opencode-ci-auth prepare` checks a cached install by the same rules, in src/ (this file cannot be imported there).
      const same = prepareTarball.tarballFiles(await tarball(format, files));
      expect(Object.fromEntries([...same].map(([path, bytes]) => [path, bytes.toString()]))).toEqual(files);
    },
  );

  it("names a tarball's integrity as the registry's dist.integrity does", () => {
    expect(check.integrityOf(Buffer.from("abc"))).toBe(
      "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==",
    );
    expect(prepareTarball.integrityOf(Buffer.from("abc"))).toBe(check.integrityOf(Buffer.from("abc")));
  });

  it("lists the packages of an install, nested and scoped ones included, once npm's records are gone", async () => {
    const dir = await install();
    expect(() => check.inventory(dir, "opencode-ci-auth", "1.2.3")).toThrow(
      new check.Mismatch(`${dir} holds "package-lock.json", which npm does not write there`),
    );
    check.forgetNpmRecords(dir);
    expect(check.inventory(dir, "opencode-ci-auth", "1.2.3")).toEqual([
      { path: "node_modules/@scope/dep", name: "@scope/dep", version: "2.0.0" },
      { path: "node_modules/@scope/dep/node_modules/inner", name: "inner", version: "0.1.0-rc.1" },
      { path: "node_modules/opencode-ci-auth", name: "opencode-ci-auth", version: "1.2.3" },
    ]);
  });

  it.each([
    ["a file npm does not write", { ".npmrc": "registry=https://evil.example/" }, '".npmrc", which npm does not write there'],
    [
      "another dependency in package.json",
      { "package.json": JSON.stringify({ dependencies: { "opencode-ci-auth": "1.2.3", evil: "1.0.0" } }) },
      'is not {"dependencies":{"opencode-ci-auth":"1.2.3"}}',
    ],
    [
      "a folder whose package has another name",
      { "node_modules/zod/package.json": JSON.stringify({ name: "evil", version: "1.0.0" }) },
      'holds a package named "evil"',
    ],
    ["a folder that is no package", { "node_modules/.bin/opencode-ci-auth": "#!/bin/sh" }, "node_modules/.bin is not a package"],
    [
      "a version that is not one",
      { "node_modules/zod/package.json": JSON.stringify({ name: "zod", version: "latest" }) },
      "node_modules/zod has no valid version",
    ],
  ])("refuses %s", async (_name, files, message) => {
    const dir = await install();
    check.forgetNpmRecords(dir);
    await lay(dir, files);
    expect(() => check.inventory(dir, "opencode-ci-auth", "1.2.3")).toThrow(message);
  });

  it("refuses a symbolic link where npm writes a package folder", async () => {
    const dir = await install();
    check.forgetNpmRecords(dir);
    await symlink(join(dir, "node_modules", "opencode-ci-auth"), join(dir, "node_modules", "zod"));
    expect(() => check.inventory(dir, "opencode-ci-auth", "1.2.3")).toThrow(`${join(dir, "node_modules", "zod")} is a symbolic link`);
  });

  it("compares a package folder with its tarball: same files, same bytes, nothing more, no links", async () => {
    const dir = await install();
    const pkg = { path: "node_modules/opencode-ci-auth", name: "opencode-ci-auth", version: "1.2.3" };
    const published = check.tarballFiles(
      await tarball("pax", {
        "package.json": JSON.stringify({ name: "opencode-ci-auth", version: "1.2.3" }),
        "dist/index.js": "export default {};\n",
      }),
    );
    expect(check.differences(dir, pkg, published)).toEqual([]);

    await lay(join(dir, pkg.path), {
      "dist/index.js": "fetch('https://evil.example');export default {};\n",
      "dist/extra.js": "",
      "node_modules/dep/package.json": "{}",
    });
    await rm(join(dir, pkg.path, "package.json"));
    expect(check.differences(dir, pkg, published).sort()).toEqual([
      `${dir}/${pkg.path}/dist/extra.js is not in opencode-ci-auth@1.2.3's published tarball`,
      `${dir}/${pkg.path}/dist/index.js differs from the file in opencode-ci-auth@1.2.3's published tarball`,
      `${dir}/${pkg.path}/package.json is missing`,
    ]);
    await rm(join(dir, pkg.path, "dist", "extra.js"));
    await symlink("/etc/passwd", join(dir, pkg.path, "dist", "extra.js"));
    expect(() => check.differences(dir, pkg, published)).toThrow("dist/extra.js is a symbolic link, which npm does not extract");
  });

  it("does not claim to check a package that bundles its dependencies", async () => {
    const dir = await install();
    const pkg = { path: "node_modules/opencode-ci-auth", name: "opencode-ci-auth", version: "1.2.3" };
    const published = check.tarballFiles(await tarball("ustar", { "package.json": "{}", "node_modules/b/index.js": "" }));
    expect(() => check.differences(dir, pkg, published)).toThrow("opencode-ci-auth@1.2.3 bundles its dependencies");
  });
});
