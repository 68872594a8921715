/**
 * src/cli/config-files.ts: the opencode config is found and merged as opencode does, so `doctor` and `token` see
 * what `opencode run` would. Every test builds its own tree in a temp dir: a fake HOME / XDG_CONFIG_HOME, and a
 * `.git` directory that bounds the upward search (a config above it must never be read).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { loadOpencodeConfig, mergeConfig } from "../../src/cli/config-files.js";

let root: string;
/** root/home: the fake HOME. */
let home: string;
/** root/xdg: the fake XDG_CONFIG_HOME. */
let xdg: string;
/** root/outside/repo: the git root. */
let repo: string;
/** root/outside/repo/packages/app: the cwd. */
let cwd: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "ci-auth-config-files-"));
  home = join(root, "home");
  xdg = join(root, "xdg");
  repo = join(root, "outside", "repo");
  cwd = join(repo, "packages", "app");
  await mkdir(join(repo, ".git"), { recursive: true });
  await mkdir(cwd, { recursive: true });
  await mkdir(home, { recursive: true });
  // Above the git root: outside the project, so never part of it.
  await put(join(root, "outside", "opencode.json"), { above_git_root: true, w0: "ABOVE", w7: "ABOVE" });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(path: string, content: unknown): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return path;
}

/** The 8 layers, lowest precedence first. */
const LAYERS = [
  "global",
  "OPENCODE_CONFIG",
  "project@root",
  "project@cwd",
  ".opencode@root",
  ".opencode@cwd",
  "OPENCODE_CONFIG_DIR",
  "OPENCODE_CONFIG_CONTENT",
] as const;

/** Layer i sets w_j for every j >= i: after the merge, w_j names layer j exactly when each layer beats all below it. */
function layerContent(i: number): Record<string, string> {
  const out: Record<string, string> = { [`only_${i}`]: LAYERS[i] as string };
  for (let j = i; j < LAYERS.length; j++) out[`w${j}`] = LAYERS[i] as string;
  return out;
}

describe("loadOpencodeConfig: search order and precedence", () => {
  it("global < OPENCODE_CONFIG < project (git root down to cwd, nearer wins) < .opencode < OPENCODE_CONFIG_DIR < OPENCODE_CONFIG_CONTENT", async () => {
    const paths = {
      global: await put(join(xdg, "opencode", "opencode.json"), layerContent(0)),
      custom: await put(join(root, "custom", "custom.json"), layerContent(1)),
      projectRoot: await put(join(repo, "opencode.json"), layerContent(2)),
      projectCwd: await put(join(cwd, "opencode.json"), layerContent(3)),
      dotRoot: await put(join(repo, ".opencode", "opencode.json"), layerContent(4)),
      dotCwd: await put(join(cwd, ".opencode", "opencode.jsonc"), layerContent(5)),
      configDir: await put(join(root, "cfgdir", "opencode.json"), layerContent(6)),
    };
    const env = {
      XDG_CONFIG_HOME: xdg,
      OPENCODE_CONFIG: join(root, "custom", "custom.json"),
      OPENCODE_CONFIG_DIR: join(root, "cfgdir"),
      OPENCODE_CONFIG_CONTENT: JSON.stringify(layerContent(7)),
    };

    const { sources, config } = await loadOpencodeConfig({ cwd, env, home });

    expect(sources).toEqual([
      { origin: "global", path: paths.global },
      { origin: "OPENCODE_CONFIG", path: paths.custom },
      { origin: "project", path: paths.projectRoot },
      { origin: "project", path: paths.projectCwd },
      { origin: ".opencode", path: paths.dotRoot },
      { origin: ".opencode", path: paths.dotCwd },
      { origin: "OPENCODE_CONFIG_DIR", path: paths.configDir },
      { origin: "OPENCODE_CONFIG_CONTENT", path: "OPENCODE_CONFIG_CONTENT" },
    ]);
    for (const [j, layer] of LAYERS.entries()) {
      expect(config[`w${j}`], `w${j}`).toBe(layer);
      expect(config[`only_${j}`], `only_${j}`).toBe(layer);
    }
    // The file above the .git directory is outside the project.
    expect(config["above_git_root"]).toBeUndefined();
  });

  it("relative OPENCODE_CONFIG and OPENCODE_CONFIG_DIR resolve against the cwd", async () => {
    const custom = await put(join(cwd, "ci", "opencode.ci.json"), { from: "custom" });
    const dir = await put(join(cwd, "ci", "dir", "opencode.jsonc"), { fromDir: "dir" });
    const { sources, config } = await loadOpencodeConfig({
      cwd,
      env: { OPENCODE_CONFIG: "ci/opencode.ci.json", OPENCODE_CONFIG_DIR: "ci/dir" },
      home,
    });
    expect(sources).toEqual([
      { origin: "OPENCODE_CONFIG", path: custom },
      { origin: "OPENCODE_CONFIG_DIR", path: dir },
    ]);
    expect(config).toEqual({ from: "custom", fromDir: "dir" });
  });

  it("without XDG_CONFIG_HOME the global config is HOME/.config/opencode: config.json < opencode.json < opencode.jsonc", async () => {
    const dir = join(home, ".config", "opencode");
    const a = await put(join(dir, "config.json"), { a: "config.json", b: "config.json", c: "config.json" });
    const b = await put(join(dir, "opencode.json"), { b: "opencode.json", c: "opencode.json" });
    const c = await put(join(dir, "opencode.jsonc"), { c: "opencode.jsonc" });
    // XDG_CONFIG_HOME is not set, so the tree under `xdg` is not looked at.
    await put(join(xdg, "opencode", "opencode.json"), { xdg: true });

    const { sources, config } = await loadOpencodeConfig({ cwd, env: {}, home });

    expect(sources).toEqual([
      { origin: "global", path: a },
      { origin: "global", path: b },
      { origin: "global", path: c },
    ]);
    expect(config).toEqual({ a: "config.json", b: "opencode.json", c: "opencode.jsonc" });
  });

  it("in one directory, opencode.jsonc beats opencode.json", async () => {
    const json = await put(join(repo, "opencode.json"), { model: "from-json", keep: 1 });
    const jsonc = await put(join(repo, "opencode.jsonc"), { model: "from-jsonc" });
    const { sources, config } = await loadOpencodeConfig({ cwd: repo, env: {}, home });
    expect(sources.map((s) => s.path)).toEqual([json, jsonc]);
    expect(config).toEqual({ model: "from-jsonc", keep: 1 });
  });

  it("an OPENCODE_CONFIG that names a missing file is reported, not silently skipped", async () => {
    await rm(join(root, "outside", "opencode.json"), { force: true });
    const missing = join(root, "nowhere", "custom.json");
    const { sources, config } = await loadOpencodeConfig({ cwd, env: { XDG_CONFIG_HOME: xdg, OPENCODE_CONFIG: missing }, home });
    expect(sources).toEqual([{ origin: "OPENCODE_CONFIG", path: missing, error: expect.stringMatching(/^ENOENT/) }]);
    expect(config).toEqual({});
  });

  it("nothing found: no sources, an empty config", async () => {
    await rm(join(root, "outside", "opencode.json"));
    expect(await loadOpencodeConfig({ cwd, env: { XDG_CONFIG_HOME: xdg }, home })).toEqual({ sources: [], config: {} });
  });
});

describe("loadOpencodeConfig: file contents", () => {
  it("reads JSONC: line and block comments, trailing commas", async () => {
    const path = await put(
      join(cwd, "opencode.jsonc"),
      `// the project's config
{
  /* the provider */
  "provider": {
    "miaou": {
      "options": {
        "oauth2": {
          "clientId": "opencode-ci", // public client
          "scopes": ["openid", "models.read",],
        },
      },
    },
  },
}
`,
    );
    const { sources, config } = await loadOpencodeConfig({ cwd, env: {}, home });
    expect(sources).toEqual([{ origin: "project", path }]);
    expect(config).toEqual({
      provider: { miaou: { options: { oauth2: { clientId: "opencode-ci", scopes: ["openid", "models.read"] } } } },
    });
  });

  it("a broken file is reported with its error and skipped; the other files still count", async () => {
    const good = await put(join(repo, "opencode.json"), {
      model: "good",
      provider: { miaou: { options: { baseURL: "https://api.example.com/v1" } } },
    });
    const broken = await put(join(cwd, "opencode.json"), '{\n  "model": "broken",\n  "provider": {\n    "miaou": \n  }\n}\n');
    const array = await put(join(cwd, ".opencode", "opencode.json"), "[1, 2]");

    const { sources, config } = await loadOpencodeConfig({ cwd, env: { OPENCODE_CONFIG_CONTENT: '{ "small_model": ' }, home });

    expect(sources).toEqual([
      { origin: "project", path: good },
      { origin: "project", path: broken, error: "ValueExpected at line 5" },
      { origin: ".opencode", path: array, error: "not a JSON object" },
      { origin: "OPENCODE_CONFIG_CONTENT", path: "OPENCODE_CONFIG_CONTENT", error: expect.stringMatching(/^ValueExpected at line 1$/) },
    ]);
    // Nothing of the broken file is merged, not even the keys before the error.
    expect(config).toEqual({ model: "good", provider: { miaou: { options: { baseURL: "https://api.example.com/v1" } } } });
  });

  it("deep-merges provider options across files; arrays and scalars are replaced by the nearer file", async () => {
    await put(join(xdg, "opencode", "opencode.json"), {
      provider: {
        miaou: {
          name: "Miaou",
          options: { oauth2: { issuer: "https://auth.example.com", clientId: "global-client", scopes: ["openid", "profile"] } },
        },
      },
      model: "miaou/small",
    });
    await put(join(repo, "opencode.json"), {
      provider: {
        miaou: {
          options: {
            baseURL: "https://api.example.com/v1",
            oauth2: { clientId: "opencode-ci", scopes: ["models.read"], subjectTokenSource: { type: "github_actions" } },
          },
        },
        other: { options: { apiKey: "{env:OTHER_KEY}" } },
      },
    });
    await put(join(cwd, "opencode.json"), {
      provider: { miaou: { options: { oauth2: { subjectTokenSource: { audience: "https://auth.example.com" } } } } },
    });

    const { config } = await loadOpencodeConfig({ cwd, env: { XDG_CONFIG_HOME: xdg, OTHER_KEY: "other-key" }, home });

    expect(config).toEqual({
      model: "miaou/small",
      provider: {
        miaou: {
          name: "Miaou",
          options: {
            baseURL: "https://api.example.com/v1",
            oauth2: {
              issuer: "https://auth.example.com",
              clientId: "opencode-ci",
              scopes: ["models.read"],
              subjectTokenSource: { type: "github_actions", audience: "https://auth.example.com" },
            },
          },
        },
        other: { options: { apiKey: "other-key" } },
      },
    });
  });
});

describe("loadOpencodeConfig: {env:VAR}, as opencode substitutes it", () => {
  it("in every file and in OPENCODE_CONFIG_CONTENT, once: a value holding a reference stays literal", async () => {
    await put(join(repo, "opencode.json"), {
      provider: { miaou: { options: { baseURL: "{env:MODEL_URL}", oauth2: { clientSecret: "{env:HOLDS_A_REFERENCE}" } } } },
    });
    const env = {
      MODEL_URL: "https://api.example.com/v1",
      HOLDS_A_REFERENCE: "{env:ACTIONS_ID_TOKEN_REQUEST_TOKEN}",
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-secret",
      OPENCODE_CONFIG_CONTENT: '{ "model": "miaou/{env:MODEL}" }',
      MODEL: "big",
    };
    const { config } = await loadOpencodeConfig({ cwd, env, home });
    expect(config).toEqual({
      model: "miaou/big",
      provider: {
        miaou: { options: { baseURL: "https://api.example.com/v1", oauth2: { clientSecret: "{env:ACTIONS_ID_TOKEN_REQUEST_TOKEN}" } } },
      },
    });
  });

  it("an unset variable becomes empty, and the name is taken as written (no trimming), like opencode 1.18.33", async () => {
    await put(join(repo, "opencode.json"), { a: "<{env:UNSET_HERE}>", b: "<{env: SPACED }>" });
    const { config } = await loadOpencodeConfig({ cwd, env: { SPACED: "x", " SPACED ": undefined }, home });
    expect(config).toEqual({ a: "<>", b: "<>" });
  });
});

describe("loadOpencodeConfig: --config", () => {
  it("reads only that file: no global, project, .opencode, OPENCODE_CONFIG(_DIR) or OPENCODE_CONFIG_CONTENT", async () => {
    await put(join(xdg, "opencode", "opencode.json"), { global: true });
    await put(join(repo, "opencode.json"), { project: true });
    await put(join(cwd, ".opencode", "opencode.json"), { dot: true });
    await put(join(root, "custom.json"), { custom: true });
    await put(join(root, "cfgdir", "opencode.json"), { dir: true });
    const only = await put(join(cwd, "ci", "only.jsonc"), '{ "only": true, // comment\n}');
    const env = {
      XDG_CONFIG_HOME: xdg,
      OPENCODE_CONFIG: join(root, "custom.json"),
      OPENCODE_CONFIG_DIR: join(root, "cfgdir"),
      OPENCODE_CONFIG_CONTENT: '{"inline": true}',
    };

    const { sources, config } = await loadOpencodeConfig({ cwd, env, home, explicitPath: "ci/only.jsonc" });

    expect(sources).toEqual([{ origin: "--config", path: only }]);
    expect(config).toEqual({ only: true });
  });

  it("a missing --config file is reported as ENOENT, with nothing merged", async () => {
    await put(join(repo, "opencode.json"), { project: true });
    const { sources, config } = await loadOpencodeConfig({ cwd, env: {}, home, explicitPath: "nope.json" });
    expect(sources).toEqual([{ origin: "--config", path: join(cwd, "nope.json"), error: "ENOENT" }]);
    expect(config).toEqual({});
  });

  it("a broken --config file is reported with its parse error", async () => {
    const path = await put(join(cwd, "bad.json"), '{ "a": 1 "b": 2 }');
    const { sources, config } = await loadOpencodeConfig({ cwd, env: {}, home, explicitPath: path });
    expect(sources).toEqual([{ origin: "--config", path, error: "CommaExpected at line 1" }]);
    expect(config).toEqual({});
  });
});

describe("mergeConfig", () => {
  it("merges objects key by key, replaces arrays and scalars, and leaves its inputs alone", () => {
    const base = { a: { b: 1, c: [1, 2], d: { e: "x" } }, f: "keep" };
    const over = { a: { c: [3], d: { g: "y" } }, h: null };
    expect(mergeConfig(base, over)).toEqual({ a: { b: 1, c: [3], d: { e: "x", g: "y" } }, f: "keep", h: null });
    expect(base).toEqual({ a: { b: 1, c: [1, 2], d: { e: "x" } }, f: "keep" });
  });
});
