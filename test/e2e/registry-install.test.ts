/**
 * opencode's own install of the plugin, as a user's fresh CI runner does it: `"plugin": ["opencode-ci-auth"]`, a
 * fresh HOME, and a loopback npm registry (test/ci/support/local-registry.ts, which logs every request) serving the
 * packed tarball and nothing else. The bundle has no dependencies, so the install fetches exactly one package, and
 * the run authenticates through it. opencode's own SDK (@opencode-ai/plugin), which it installs into its config
 * directory, is pre-populated with a lockfile that agrees, so opencode asks the registry nothing for it.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startLocalRegistry, type LocalRegistry } from "../ci/support/local-registry.js";
import { createSandbox, type Sandbox } from "../support/opencode-cli.js";
import { githubActionsEnv, issueConfig } from "../support/issue-config.js";
import { packedPackage } from "../support/packed-package.js";
import { startWorld, type World } from "../support/world.js";

vi.setConfig({ testTimeout: 300_000 });

let world: World;
let registry: LocalRegistry;
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  world = await startWorld();
  registry = await startLocalRegistry();
  registry.publish(await readFile(packedPackage().tarball));
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await registry?.close();
  await world?.close();
});

describe("opencode installs the plugin from a registry", () => {
  it("fetches one package, the plugin's tarball, and the run authenticates through it", async () => {
    const sandbox = await createSandbox(githubActionsEnv(world), { plugin: "none" });
    sandboxes.push(sandbox);
    await sandbox.writeConfig(issueConfig(world));
    const grantsBefore = world.idp.grants.length;
    const result = await sandbox.run(["run", "--model", "miaou/mock-model", "Say hello"], {
      env: { npm_config_offline: "false", npm_config_registry: registry.url, npm_config_userconfig: join(sandbox.home, ".npmrc") },
    });
    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(result.stdout).toContain("Hello from the mock model");
    expect(world.idp.grants.length - grantsBefore, "the installed plugin ran the grant").toBe(1);

    // One package: the plugin's tarball. (opencode 1.18 starts a second install of a bare-named plugin for its second
    // plugin loader, in the background: here a second request for the packument. Whether it also asks for the tarball
    // before the run ends is timing, so the same tarball may appear twice.)
    const fetched = registry.requests.filter((r) => r.path.startsWith("/-/tarballs/"));
    expect([...new Set(fetched.map((r) => r.path))]).toEqual([`/-/tarballs/opencode-ci-auth-${packedVersion()}.tgz`]);
    // Packuments: ours, and @opencode-ai/plugin's, which npm looks up for the optional peer (this registry answers 404,
    // and nothing is installed for it). The only other request is npm's audit (a POST, refused).
    const packuments = new Set(registry.requests.filter((r) => r.method === "GET" && !r.path.startsWith("/-/")).map((r) => r.path));
    expect(packuments).toContain("/opencode-ci-auth");
    expect([...packuments].filter((p) => p !== "/opencode-ci-auth" && p !== "/@opencode-ai/plugin")).toEqual([]);
    for (const other of registry.requests.filter((r) => r.method !== "GET")) expect(other.path).toBe("/-/npm/v1/security/advisories/bulk");
    // What opencode installed: the plugin and nothing beside it.
    const modules = join(sandbox.home, ".cache", "opencode", "packages", "opencode-ci-auth@latest", "node_modules");
    expect((await readdir(modules)).filter((name) => !name.startsWith("."))).toEqual(["opencode-ci-auth"]);
  });
});

function packedVersion(): string {
  return /opencode-ci-auth-([^/]+)\.tgz$/.exec(packedPackage().tarball)?.[1] ?? "unknown";
}
