/**
 * `opencode-ci-auth prepare`, the built command in a child process. Failure paths run offline (a loopback registry
 * that answers 404, a closed port, a PATH without npm or opencode). The happy paths install from the npm registry the
 * machine is configured with, and the last test runs the real opencode CLI: after `prepare`, a run with a plugin sends
 * no request to the registry (a loopback one that records them), while the same run in an unprepared home does.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { appendFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { assertBuilt, createCliProject } from "../support/cli.js";
import type { CliProject } from "../support/cli.js";
import { startModelServer } from "../support/model-server.js";
import type { ModelServer } from "../support/model-server.js";
import { REPO_ROOT } from "../support/opencode-cli.js";

const OPENCODE = join(REPO_ROOT, "node_modules", ".bin", "opencode");
const OPENCODE_VERSION = (
  JSON.parse(await readFile(join(REPO_ROOT, "node_modules", "opencode-ai", "package.json"), "utf8")) as { version: string }
).version;
const SDK_DIR = "@opencode-ai+plugin@" + OPENCODE_VERSION;

/** A registry on 127.0.0.1 that records every request and has no package. */
async function recordingRegistry(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(404, { "content-type": "application/json" }).end('{"error":"Not found"}');
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    requests,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

let project: CliProject;
let registry: Awaited<ReturnType<typeof recordingRegistry>>;
/** npm settings for every run: its own cache, no retries, so an unreachable registry fails in seconds. */
let npmEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  await assertBuilt();
  project = await createCliProject();
  registry = await recordingRegistry();
  npmEnv = {
    npm_config_cache: project.path("npm-cache"),
    npm_config_fetch_retries: "0",
    npm_config_update_notifier: "false",
    // The machine's own npm settings (registry, CA file, proxy), which the fake HOME would otherwise hide.
    npm_config_userconfig: join(homedir(), ".npmrc"),
    ...Object.fromEntries(
      ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"].flatMap(
        (k) => (process.env[k] ? [[k, process.env[k]]] : []),
      ),
    ),
  };
});

afterAll(async () => {
  await registry?.close();
  await project?.dispose();
});

const configDir = () => join(project.home, ".config", "opencode");

describe("failure paths: exit 1, the step and the fix on stderr", () => {
  it("opencode not found: names the command and says to install it or pass --opencode-version", async () => {
    const run = await project.run(["prepare", "--opencode", project.path("no-such-opencode")], npmEnv);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("prepare: opencode version:");
    expect(run.stderr).toContain("was not found");
    expect(run.stderr).toContain("--opencode-version VERSION");
  });

  it("--opencode-version that is not an exact version is refused before npm runs", async () => {
    const run = await project.run(["prepare", "--opencode-version", "latest", "--dir", project.path("d0")], {
      ...npmEnv,
      npm_config_registry: registry.url,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--opencode-version must be an exact version such as 1.18.33, not "latest"');
    expect(registry.requests).toEqual([]);
  });

  it("npm not found: says to install Node.js with npm", async () => {
    const empty = project.path("empty-bin");
    await mkdir(empty, { recursive: true });
    const run = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--dir", project.path("d1")], {
      ...npmEnv,
      PATH: empty,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("npm was not found on PATH");
  });

  it("registry unreachable: names the registry and the npm setting to check", async () => {
    const closed = await recordingRegistry();
    await closed.close(); // a port that was just free: connections are refused
    const run = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--dir", project.path("d2")], {
      ...npmEnv,
      npm_config_registry: closed.url,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`the npm registry (${closed.url}) could not be reached`);
    expect(run.stderr).toContain("npm config get registry");
  });

  it("no @opencode-ai/plugin for that opencode version on the registry: a version mismatch, with what to check", async () => {
    const before = registry.requests.length;
    const run = await project.run(["prepare", "--opencode-version", "0.0.1", "--dir", project.path("d3")], {
      ...npmEnv,
      npm_config_registry: registry.url,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("the registry has no @opencode-ai/plugin 0.0.1, the version that matches opencode 0.0.1");
    expect(registry.requests.slice(before).some((r) => r.includes("@opencode-ai%2fplugin"))).toBe(true);
  });

  it("a dir whose package.json declares its own dependencies is left to its owner", async () => {
    const own = project.path("own");
    await mkdir(own, { recursive: true });
    await writeFile(join(own, "package.json"), JSON.stringify({ dependencies: { "left-pad": "1.3.0" } }));
    const run = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--dir", own], {
      ...npmEnv,
      npm_config_registry: registry.url,
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`skipped ${own}: its package.json also declares left-pad`);
    expect(await readdir(own)).toEqual(["package.json"]);
  });

  it("usage errors exit 2", async () => {
    const run = await project.run(["prepare", "--bogus"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Unknown option '--bogus'");
  });
});

describe("with the registry", () => {
  const cache = () => project.path("cache");

  it("prepares the global config dir from opencode --version, through the cache; a second run does nothing", async () => {
    const first = await project.run(["prepare", "--opencode", OPENCODE, "--cache-dir", cache()], npmEnv);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`opencode ${OPENCODE_VERSION}: @opencode-ai/plugin@${OPENCODE_VERSION}`);
    expect(first.stdout).toContain(`prepared ${configDir()}`);
    expect(JSON.parse(await readFile(join(configDir(), "package.json"), "utf8"))).toEqual({
      dependencies: { "@opencode-ai/plugin": OPENCODE_VERSION },
    });
    const lock = JSON.parse(await readFile(join(configDir(), "package-lock.json"), "utf8")) as {
      packages: Record<string, { dependencies?: object }>;
    };
    expect(lock.packages[""]?.dependencies).toEqual({ "@opencode-ai/plugin": OPENCODE_VERSION });
    const sdk = JSON.parse(await readFile(join(configDir(), "node_modules", "@opencode-ai", "plugin", "package.json"), "utf8")) as {
      version: string;
    };
    expect(sdk.version).toBe(OPENCODE_VERSION);

    // Idempotent: the second run finds the dir prepared and never reaches npm (its registry is a closed port here).
    const second = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--cache-dir", cache()], {
      ...npmEnv,
      npm_config_registry: "http://127.0.0.1:9/",
    });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`${configDir()} is already prepared`);
    expect(second.stdout).not.toContain("installed");
  });

  it("a restored cache is used only after it matches the registry; a poisoned one is refused and reinstalled", async () => {
    const target = project.path("fresh-dir");
    const good = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--cache-dir", cache(), "--dir", target], npmEnv);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain("matches the registry, file for file");
    expect(good.stdout).not.toContain("installed @opencode-ai/plugin");

    const poisoned = join(cache(), SDK_DIR, "node_modules", "@opencode-ai", "plugin", "dist", "index.js");
    await appendFile(poisoned, "\nglobalThis.poisoned = true;\n");
    const target2 = project.path("fresh-dir-2");
    const run = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--cache-dir", cache(), "--dir", target2], npmEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      `refused the cached install in ${join(cache(), SDK_DIR)}: node_modules/@opencode-ai/plugin/dist/index.js differs from the file in @opencode-ai/plugin@${OPENCODE_VERSION}'s published tarball`,
    );
    expect(run.stdout).toContain("installed @opencode-ai/plugin");
    expect(await readFile(join(target2, "node_modules", "@opencode-ai", "plugin", "dist", "index.js"), "utf8")).not.toContain("poisoned");
    expect(await readFile(poisoned, "utf8")).not.toContain("poisoned");
  });
});

describe("the real opencode CLI after prepare", () => {
  let model: ModelServer;

  beforeAll(async () => {
    model = await startModelServer({ validateToken: async (t) => t === "static-key" });
  });

  afterAll(async () => {
    await model?.close();
  });

  /** `opencode run` with a no-op plugin in a fresh home (prepared or not), npm pointed at the recording registry. */
  async function runWithPlugin(home: string): Promise<{ code: number | null; requests: string[]; output: string }> {
    const dir = join(home, "project");
    await mkdir(join(dir, ".git"), { recursive: true });
    await writeFile(join(dir, "noop.js"), "export default async () => ({});\n");
    await writeFile(
      join(dir, "opencode.json"),
      JSON.stringify({
        plugin: [`file://${join(dir, "noop.js")}`],
        provider: {
          miaou: {
            npm: "@ai-sdk/openai-compatible",
            name: "Miaou",
            options: { baseURL: model.baseURL, apiKey: "static-key" },
            models: { "mock-model": { name: "Mock" } },
          },
        },
      }),
    );
    const before = registry.requests.length;
    const env = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local", "share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local", "state"),
      ...npmEnv,
      npm_config_registry: registry.url,
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
    };
    const result = await new Promise<{ code: number | null; output: string }>((ok, fail) => {
      const child = spawn(OPENCODE, ["run", "--model", "miaou/mock-model", "Say hello"], {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += String(d)));
      child.stderr.on("data", (d: Buffer) => (output += String(d)));
      const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
      child.on("error", fail);
      child.on("close", (code) => (clearTimeout(timer), ok({ code, output })));
    });
    return { ...result, requests: registry.requests.slice(before) };
  }

  it("a run in a prepared home asks the registry for nothing; the same run unprepared asks for @opencode-ai/plugin", async () => {
    const prepared = project.path("home-prepared");
    const prep = await project.run(["prepare", "--opencode-version", OPENCODE_VERSION, "--cache-dir", project.path("cache")], {
      ...npmEnv,
      HOME: prepared,
      XDG_CONFIG_HOME: join(prepared, ".config"),
    });
    expect(prep.code).toBe(0);
    const fast = await runWithPlugin(prepared);
    expect(fast.output).toContain("Hello from the mock model");
    expect(fast.requests).toEqual([]);

    const cold = await runWithPlugin(project.path("home-cold"));
    expect(cold.output).toContain("Hello from the mock model");
    expect(cold.requests.some((r) => r.includes("@opencode-ai%2fplugin"))).toBe(true);
    await rm(project.path("home-cold"), { recursive: true, force: true });
  });
});
