/**
 * The plugin's start as `npm pack` ships it: in a fresh Node process, what opencode runs before the first model
 * request (import, the plugin function, the `config` hook, the agent's shell env) at the default log level. It
 * loads neither pino (dist/vendor/pino.cjs, required on the first log line) nor child_process (a token program's),
 * and a logged problem still reaches stderr at once, from the vendored pino.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { describe, expect, it } from "vitest";

import { packedPackage } from "./support/packed-package.js";

const { packageDir } = packedPackage();
const PLUGIN = pathToFileURL(join(packageDir, "dist", "index.js")).href;
const PINO = join(packageDir, "dist", "vendor", "pino.cjs");

/** Runs the plugin's start with `oauth2` for provider "acme"; reports what got loaded. */
const SCRIPT = `
import { createRequire } from "node:module";
const [plugin, oauth2] = [process.argv[1], JSON.parse(process.argv[2])];
const loadedBefore = process.moduleLoadList.includes("NativeModule child_process");
const { default: start } = await import(plugin);
const hooks = await start({ directory: process.cwd(), worktree: process.cwd() }, {});
const config = { provider: { acme: { options: { baseURL: "https://llm.example.com/v1", oauth2 }, models: { m: {} } } } };
await hooks.config(config);
const env = {};
await hooks["shell.env"]({ cwd: process.cwd() }, { env });
const cache = createRequire(import.meta.url).cache;
process.stdout.write(JSON.stringify({
  pino: Object.keys(cache).filter((k) => k.endsWith("pino.cjs")),
  childProcess: !loadedBefore && process.moduleLoadList.includes("NativeModule child_process"),
  apiKey: config.provider.acme.options.apiKey,
}));
`;

async function start(oauth2: unknown, env: NodeJS.ProcessEnv = {}) {
  const base = { PATH: process.env.PATH, HOME: process.env.HOME };
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ["--input-type=module", "-e", SCRIPT, PLUGIN, JSON.stringify(oauth2)],
    { env: { ...base, ...env }, timeout: 30_000 },
  );
  return { ...(JSON.parse(stdout) as { pino: string[]; childProcess: boolean; apiKey: unknown }), stderr };
}

const GOOD = {
  issuer: "https://auth.example.com/realms/acme",
  clientId: "opencode-ci",
  subjectTokenSource: { type: "exec", command: ["/usr/local/bin/mint-token"] },
};

describe("the packed plugin's start", () => {
  it("at the default level loads neither pino nor child_process, and writes nothing", async () => {
    const result = await start(GOOD);
    expect(result.apiKey).toBe("opencode-ci-auth-managed");
    expect(result.pino).toEqual([]);
    expect(result.childProcess).toBe(false);
    expect(result.stderr).toBe("");
  });

  it("a config error is logged at once, through the vendored pino", async () => {
    const result = await start({ ...GOOD, clientId: "" });
    expect(result.pino).toEqual([PINO]);
    expect(result.stderr).toMatch(/^\[\d\d:\d\d:\d\d\] ERROR: opencode-ci-auth \[acme\]: invalid configuration \(1 problem\):$/m);
    expect(result.stderr).toContain("oauth2.clientId: clientId must not be empty");
  });

  it("at info, blanking the job's credentials in the agent's shell is logged, through the vendored pino", async () => {
    const requestToken = "request-token-value-3f9c2a7e";
    const result = await start(GOOD, {
      OPENCODE_CI_AUTH_LOG_LEVEL: "info",
      OPENCODE_CI_AUTH_LOG_FORMAT: "json",
      ACTIONS_ID_TOKEN_REQUEST_URL: "https://token.actions.example/req",
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
    });
    expect(result.pino).toEqual([PINO]);
    const events = result.stderr
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { event?: string; variables?: string[] });
    expect(events.find((e) => e.event === "shell_env_blanked")?.variables).toEqual(
      expect.arrayContaining(["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"]),
    );
    expect(result.stderr.includes(requestToken)).toBe(false);
  });
});
