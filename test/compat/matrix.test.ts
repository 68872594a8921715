/**
 * One list of supported opencode releases (test/compat/versions.ts), and everything that states it agrees with it:
 * the CI job matrix that runs `npm run test:compat`, the peerDependencies range, the README's "Supported opencode
 * versions", the `opencode-version` defaults of the setup action, the reusable workflow and the GitLab component, and
 * every opencode pin in the examples and docs. Runs in `npm test`; downloads nothing.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../support/opencode-cli.js";
import { COMPAT_VERSIONS } from "./versions.js";

const read = (path: string) => readFile(join(REPO_ROOT, path), "utf8");
const NEWEST = COMPAT_VERSIONS[0];
const OLDEST = COMPAT_VERSIONS[COMPAT_VERSIONS.length - 1];

function compare(a: string, b: string): number {
  const [x, y] = [a.split(".").map(Number), b.split(".").map(Number)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

async function filesUnder(dir: string, ext: RegExp): Promise<string[]> {
  const entries = await readdir(join(REPO_ROOT, dir), { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && ext.test(e.name)).map((e) => join(e.parentPath, e.name).slice(REPO_ROOT.length + 1));
}

describe("the supported opencode releases", () => {
  it("are exact versions, newest first, and the newest is the devDependency the other tests run", async () => {
    for (const v of COMPAT_VERSIONS) expect(v).toMatch(/^\d+\.\d+\.\d+$/);
    expect([...COMPAT_VERSIONS].sort(compare).reverse()).toEqual([...COMPAT_VERSIONS]);
    expect(new Set(COMPAT_VERSIONS).size).toBe(COMPAT_VERSIONS.length);
    const installed = JSON.parse(await read("node_modules/opencode-ai/package.json")) as { version: string };
    expect(installed.version).toBe(NEWEST);
  });

  it("are the CI job matrix, one release per job, each running npm run test:compat", async () => {
    const ci = parse(await read(".github/workflows/ci.yml")) as {
      jobs: Record<
        string,
        { strategy?: { matrix?: Record<string, unknown> }; steps: Array<{ run?: string; env?: Record<string, string> }> }
      >;
    };
    const job = ci.jobs.compat;
    expect(job?.strategy?.matrix).toEqual({ opencode: [...COMPAT_VERSIONS] });
    const step = job?.steps.find((s) => s.run?.includes("npm run test:compat"));
    expect(step?.run).toBe('npm run test:compat -- "$OPENCODE_VERSION"');
    expect(step?.env?.OPENCODE_VERSION).toBe("${{ matrix.opencode }}");
  });

  it("are the lower bound of the optional peer dependency on @opencode-ai/plugin, and only that", async () => {
    const pkg = JSON.parse(await read("package.json")) as {
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    expect(pkg.peerDependencies["@opencode-ai/plugin"]).toBe(`>=${OLDEST}`);
    expect(pkg.peerDependenciesMeta["@opencode-ai/plugin"]?.optional).toBe(true);
  });

  it("are the README's supported range, each one listed", async () => {
    const readme = await read("README.md");
    const at = readme.indexOf("\n## Supported opencode versions\n");
    expect(at, 'README.md has a "## Supported opencode versions" section').toBeGreaterThan(-1);
    const section = readme.slice(at + 1).split(/\n## /)[0] ?? "";
    expect(section).toContain(`opencode **${OLDEST} to ${NEWEST}**`);
    for (const v of COMPAT_VERSIONS) expect(section).toContain(`\`${v}\``);
  });

  it("give the CI entry points their opencode-version default: the newest", async () => {
    const action = parse(await read(".github/actions/setup/action.yml")) as { inputs: Record<string, { default?: string }> };
    const workflow = parse(await read(".github/workflows/opencode-run.yml")) as {
      on: { workflow_call: { inputs: Record<string, { default?: string }> } };
    };
    const component = parseAllDocuments(await read("templates/opencode-run.yml"))[0]?.toJS() as {
      spec: { inputs: Record<string, { default?: string }> };
    };
    expect(action.inputs["opencode-version"]?.default).toBe(NEWEST);
    expect(workflow.on.workflow_call.inputs["opencode-version"]?.default).toBe(NEWEST);
    expect(component.spec.inputs["opencode-version"]?.default).toBe(NEWEST);
  });

  it("pin the examples and docs to the newest", async () => {
    const files = [
      "README.md",
      ...(await filesUnder("docs", /\.md$/)),
      ...(await filesUnder("examples", /\.ya?ml$/)),
      ...(await filesUnder("templates", /\.ya?ml$/)),
      ...(await filesUnder(".github", /\.(ya?ml|md)$/)),
    ];
    const pins: string[] = [];
    for (const file of files) {
      const text = await read(file);
      // `npm install … opencode-ai@<version>` and `opencode-version: <version>` (quoted or not).
      for (const m of text.matchAll(/opencode-ai@(\d+\.\d+\.\d+)|opencode-version:\s*"?(\d+\.\d+\.\d+)/g))
        pins.push(`${file}: ${m[1] ?? m[2]}`);
    }
    expect(pins.length).toBeGreaterThan(5);
    expect(pins.filter((p) => !p.endsWith(`: ${NEWEST}`))).toEqual([]);
  });
});
