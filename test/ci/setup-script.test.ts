/**
 * The pure parts of the setup action's helper (.github/actions/setup/setup.mjs): how one exact version is picked
 * from `npm view --json`, and the directory names opencode uses on each OS. The end-to-end runs are in
 * setup-action.test.ts; this covers what Linux cannot run, such as the Windows file-name rule.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { describe, expect, it } from "vitest";

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
    expect(() => setup.pickVersion(error, "opencode-ci-auth", "^9")).toThrow(new setup.SetupError('no published version of opencode-ci-auth matches "^9" (npm: E404 No match found for version ^9)'));
    expect(() => setup.pickVersion("", "opencode-ci-auth", "^9")).toThrow(setup.SetupError);
    expect(() => setup.pickVersion("npm ERR! network", "opencode-ci-auth", "^9")).toThrow(/did not print JSON/);
  });

  it("prepares the bare name (@latest to opencode), the exact version and the spec given", () => {
    expect(setup.pluginSpecs("^0.2.0", "0.2.1")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.2.1", "opencode-ci-auth@^0.2.0"]);
    expect(setup.pluginSpecs("latest", "0.3.0")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.3.0"]);
    expect(setup.pluginSpecs("0.3.0", "0.3.0")).toEqual(["opencode-ci-auth@latest", "opencode-ci-auth@0.3.0"]);
  });

  it("names directories as opencode does: verbatim, except <>:\"|?* and control characters on Windows", () => {
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
