/** src/cache/cache-dir.ts: where the file cache lives, on each platform and with each override. */
import path from "node:path";

import { describe, expect, it } from "vitest";

import { CACHE_DIR_ENV, defaultCacheDir } from "../../src/cache/cache-dir.js";

describe("defaultCacheDir", () => {
  const HOME = "/home/runner";

  it("OPENCODE_CI_AUTH_CACHE_DIR wins over everything", () => {
    expect(defaultCacheDir({ [CACHE_DIR_ENV]: "/tmp/job-42/cache", XDG_CACHE_HOME: "/xdg" }, HOME, "linux")).toBe("/tmp/job-42/cache");
  });

  it("a relative override is resolved from the current directory", () => {
    expect(defaultCacheDir({ [CACHE_DIR_ENV]: "rel/cache" }, HOME, "linux")).toBe(path.resolve("rel/cache"));
  });

  it("a blank override is ignored", () => {
    expect(defaultCacheDir({ [CACHE_DIR_ENV]: "  ", XDG_CACHE_HOME: "/xdg" }, HOME, "linux")).toBe("/xdg/opencode-ci-auth");
  });

  it("then $XDG_CACHE_HOME/opencode-ci-auth", () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/xdg" }, HOME, "linux")).toBe("/xdg/opencode-ci-auth");
  });

  it("a relative XDG_CACHE_HOME is ignored, as the XDG spec requires", () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: "xdg" }, HOME, "linux")).toBe("/home/runner/.cache/opencode-ci-auth");
  });

  it("then ~/.cache/opencode-ci-auth (Linux, macOS)", () => {
    expect(defaultCacheDir({}, HOME, "linux")).toBe("/home/runner/.cache/opencode-ci-auth");
    expect(defaultCacheDir({}, "/Users/me", "darwin")).toBe("/Users/me/.cache/opencode-ci-auth");
  });

  it("on Windows: %LOCALAPPDATA%\\opencode-ci-auth, else <home>\\AppData\\Local\\opencode-ci-auth", () => {
    expect(defaultCacheDir({ LOCALAPPDATA: "C:\\Users\\me\\AppData\\Local" }, "C:\\Users\\me", "win32")).toBe(
      "C:\\Users\\me\\AppData\\Local\\opencode-ci-auth",
    );
    expect(defaultCacheDir({}, "C:\\Users\\me", "win32")).toBe("C:\\Users\\me\\AppData\\Local\\opencode-ci-auth");
    expect(defaultCacheDir({ [CACHE_DIR_ENV]: "D:\\cache" }, "C:\\Users\\me", "win32")).toBe("D:\\cache");
  });

  it("defaults to process.env and the real home", () => {
    expect(path.isAbsolute(defaultCacheDir())).toBe(true);
  });
});
