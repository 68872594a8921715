/**
 * The release workflow (.github/workflows/release.yml) keeps the code it builds and tests away from the OIDC token
 * that npm trusted publishing trades for a publish token:
 *
 * - rules read from the file: only the `publish` job may mint a token; it runs in the protected `release`
 *   environment with `id-token: write` and no other permission, checks nothing out, installs nothing but npm itself
 *   (scripts off), runs no package script, and publishes the tarball the `build` job uploaded;
 * - the handoff run by the harness: the build job's real `npm pack` of this repository and its upload, then the publish
 *   job's steps with an `npm` that records what it is asked to do. A tarball changed between the jobs is not published.
 *
 * Each rule is also fed a broken copy of the file, to show it catches the mistake.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

import { REPO_ROOT } from "../support/opencode-cli.js";
import { interpolate, runSteps, type StepDefinition, type Strings } from "./support/action-runner.js";
import { artifactStubs, setupNodeStub } from "./support/action-stubs.js";

const FILE = join(REPO_ROOT, ".github", "workflows", "release.yml");
const TEXT = await readFile(FILE, "utf8");
const VERSION = (JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;

interface Job {
  needs?: string | string[];
  environment?: string | { name: string };
  permissions?: Record<string, string>;
  outputs?: Record<string, string>;
  steps: StepDefinition[];
}
interface Workflow {
  permissions?: unknown;
  jobs: Record<string, Job>;
}

const usesOf = (step: StepDefinition) => (step.uses ?? "").replace(/@.*$/, "");
const runsOf = (job: Job) => job.steps.filter((s) => typeof s.run === "string").map((s) => s.run as string);

/** What is wrong with the release workflow's split between building and publishing; empty when nothing. */
function releaseProblems(text: string): string[] {
  const doc = parse(text) as Workflow;
  const problems: string[] = [];
  if (JSON.stringify(doc.permissions) !== "{}") problems.push("the workflow's default permissions must be {} (each job states its own)");
  const { build, publish } = doc.jobs;
  if (!build || !publish) return [...problems, "needs a `build` and a `publish` job"];

  for (const [id, job] of Object.entries(doc.jobs)) {
    if (job.permissions === undefined) problems.push(`job ${id} must state its permissions`);
    if (id !== "publish" && job.permissions?.["id-token"] !== undefined)
      problems.push(`job ${id} must not have id-token (only publish mints a token)`);
  }

  // build: the repository's code runs here, and the tarball leaves it as an artifact.
  const buildRuns = runsOf(build).join("\n");
  for (const command of ["npm ci", "npm test", "npm run lint", "npm run typecheck", "npm pack"]) {
    if (!buildRuns.includes(command)) problems.push(`job build must run ${command}`);
  }
  const upload = build.steps.find((s) => usesOf(s) === "actions/upload-artifact");
  if (!upload) problems.push("job build must upload the tarball as an artifact");

  // publish: a token, the tarball, npm; nothing of the repository.
  const environment = typeof publish.environment === "string" ? publish.environment : publish.environment?.name;
  if (environment !== "release") problems.push("job publish must run in the protected `release` environment");
  if (JSON.stringify(publish.permissions) !== JSON.stringify({ "id-token": "write" })) {
    problems.push(`job publish must have exactly { id-token: write }, not ${JSON.stringify(publish.permissions)}`);
  }
  if (![publish.needs].flat().includes("build")) problems.push("job publish must need build");
  const allowed = ["actions/setup-node", "actions/download-artifact"];
  for (const step of publish.steps) {
    if (step.uses !== undefined && !allowed.includes(usesOf(step)))
      problems.push(`job publish must not use ${step.uses} (only ${allowed.join(", ")})`);
  }
  const download = publish.steps.find((s) => usesOf(s) === "actions/download-artifact");
  if (!download || !upload || download.with?.name !== upload.with?.name)
    problems.push("job publish must download the artifact job build uploads, by its name");
  for (const run of runsOf(publish)) {
    for (const line of run.split("\n").map((l) => l.trim())) {
      if (/^(#|echo\b)/.test(line)) continue;
      if (/\bnpm (ci|test|run|exec|rebuild|start|pack)\b|\bnpx\b|\bnode\b|\byarn\b|\bpnpm\b/.test(line))
        problems.push(`job publish must run no package code or script: ${line}`);
      if (
        /\bnpm (install|i|add)\b/.test(line) &&
        !/^npm install --global --ignore-scripts( --no-audit| --no-fund)* npm@\d+\.\d+\.\d+$/.test(line)
      ) {
        problems.push(`job publish may install only npm itself, at an exact version, with --ignore-scripts: ${line}`);
      }
    }
  }
  const publishes = runsOf(publish).flatMap((run) =>
    run
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => /^npm publish\b/.test(l)),
  );
  if (publishes.length !== 1) problems.push(`job publish must run npm publish once, not ${publishes.length} times`);
  for (const line of publishes) {
    // `npm publish` of a folder would pack it and run its prepack/prepare scripts: only a tarball is published.
    if (!/^npm publish "\$TARBALL"( |$)/.test(line)) problems.push(`job publish must publish the downloaded tarball ("$TARBALL"): ${line}`);
    if (!line.includes("--provenance")) problems.push(`job publish must publish with --provenance: ${line}`);
    if (!line.includes("--ignore-scripts")) problems.push(`job publish must publish with --ignore-scripts: ${line}`);
  }
  return problems;
}

describe("release.yml", () => {
  it("builds without id-token, and publishes only the tarball from the protected release environment", () => {
    expect(releaseProblems(TEXT)).toEqual([]);
  });

  it.each([
    [
      "id-token in the build job",
      (t: string) =>
        t.replace(
          "    permissions:\n      contents: read\n    outputs:\n      version: ${{ steps.version",
          "    permissions:\n      contents: read\n      id-token: write\n    outputs:\n      version: ${{ steps.version",
        ),
      "job build must not have id-token",
    ],
    [
      "a checkout in the publish job",
      (t: string) =>
        t.replace(
          '    steps:\n      - uses: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020 # v4.4.0\n        with:\n          node-version: "22"\n      # Trusted',
          '    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n      - uses: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020 # v4.4.0\n        with:\n          node-version: "22"\n      # Trusted',
        ),
      "job publish must not use actions/checkout",
    ],
    [
      "npm ci in the publish job",
      (t: string) => t.replace('          npm publish "$TARBALL"', '          npm ci\n          npm publish "$TARBALL"'),
      "job publish must run no package code or script: npm ci",
    ],
    [
      "an install with scripts in the publish job",
      (t: string) => t.replace("npm install --global --ignore-scripts --no-audit --no-fund npm@11.6.2", "npm install --global npm@11.6.2"),
      "job publish may install only npm itself",
    ],
    [
      "a publish of the folder",
      (t: string) => t.replace('npm publish "$TARBALL" --provenance', "npm publish --provenance"),
      'job publish must publish the downloaded tarball ("$TARBALL")',
    ],
    [
      "no provenance",
      (t: string) => t.replace('npm publish "$TARBALL" --provenance', 'npm publish "$TARBALL"'),
      "job publish must publish with --provenance",
    ],
    [
      "no environment",
      (t: string) => t.replace("    environment: release # protected", "    # environment: release # protected"),
      "job publish must run in the protected `release` environment",
    ],
    [
      "another permission in the publish job",
      (t: string) => t.replace("      id-token: write # npm trusted", "      contents: read\n      id-token: write # npm trusted"),
      "job publish must have exactly { id-token: write }",
    ],
    [
      "a default id-token for the workflow",
      (t: string) => t.replace("permissions: {}", "permissions:\n  id-token: write"),
      "the workflow's default permissions must be {}",
    ],
    [
      "an artifact of another name",
      (t: string) => t.replace("          name: package\n          path: package", "          name: other\n          path: package"),
      "job publish must download the artifact job build uploads",
    ],
  ])("catches %s", (_name, seed, message) => {
    const broken = seed(TEXT);
    expect(broken, "the seeded mistake changed the file").not.toBe(TEXT);
    expect(releaseProblems(broken)).toEqual(expect.arrayContaining([expect.stringContaining(message)]));
  });
});

describe("release.yml's handoff, run by the harness", () => {
  const workflow = parse(TEXT) as Workflow;
  let root: string;
  let bin: string;
  let npmLog: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "opencode-ci-auth-release-"));
    bin = join(root, "bin");
    npmLog = join(root, "npm.log");
    await mkdir(bin);
    // The publish job's npm: it records its arguments (and whether the tarball is there), publishes nothing.
    await writeFile(join(bin, "npm"), `#!/bin/sh\nprintf '%s\\n' "$*" >> "${npmLog}"\nif [ "$1" = publish ]; then test -f "$2"; fi\n`);
    await chmod(join(bin, "npm"), 0o755);
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  /** The build job's steps that make and hand on the tarball (the real `npm pack` of this working tree). */
  async function build(artifacts: ReturnType<typeof artifactStubs>) {
    const job = workflow.jobs.build!;
    const steps = job.steps.filter((s) => s.id === "version" || s.id === "pack" || usesOf(s) === "actions/upload-artifact");
    expect(steps).toHaveLength(3);
    const runnerTemp = await mkdtemp(join(root, "build-temp-"));
    const result = await runSteps(
      steps,
      {},
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_update_notifier: "false" },
        workspace: REPO_ROOT,
        runnerTemp,
        contexts: { github: { ref_name: `v${VERSION}` } },
        stubs: { "actions/upload-artifact": artifacts.upload.stub },
      },
    );
    const stepsContext = Object.fromEntries(result.steps.filter((s) => s.id).map((s) => [s.id, { outputs: s.outputs }]));
    const outputs: Strings = Object.fromEntries(
      Object.entries(job.outputs ?? {}).map(([name, value]) => [name, interpolate(value, { steps: stepsContext })]),
    );
    return { result, outputs };
  }

  async function publish(artifacts: ReturnType<typeof artifactStubs>, outputs: Strings) {
    const workspace = await mkdtemp(join(root, "publish-workspace-"));
    await rm(npmLog, { force: true });
    const result = await runSteps(
      workflow.jobs.publish!.steps,
      {},
      {
        env: { PATH: [bin, process.env.PATH].join(delimiter) },
        workspace,
        runnerTemp: await mkdtemp(join(root, "publish-temp-")),
        contexts: { needs: { build: { outputs } } },
        stubs: { "actions/setup-node": setupNodeStub().stub, "actions/download-artifact": artifacts.download.stub },
      },
    );
    const npm = (await readFile(npmLog, "utf8").catch(() => "")).split("\n").filter(Boolean);
    return { result, npm };
  }

  it("publishes with provenance exactly the tarball the build job packed, and nothing else runs", async () => {
    const artifacts = artifactStubs(join(root, "artifacts-ok"));
    const { result: built, outputs } = await build(artifacts);
    expect(built.ok, built.log).toBe(true);
    expect(outputs).toEqual({
      version: VERSION,
      tarball: `opencode-ci-auth-${VERSION}.tgz`,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(await artifacts.files("package")).toEqual([`opencode-ci-auth-${VERSION}.tgz`]);

    const { result, npm } = await publish(artifacts, outputs);
    expect(result.ok, result.log).toBe(true);
    expect(npm).toEqual([
      "install --global --ignore-scripts --no-audit --no-fund npm@11.6.2",
      `publish package/opencode-ci-auth-${VERSION}.tgz --provenance --access public --ignore-scripts`,
    ]);
  }, 120_000);

  it("does not publish a tarball that changed after the build job packed it", async () => {
    const artifacts = artifactStubs(join(root, "artifacts-tampered"));
    const { result: built, outputs } = await build(artifacts);
    expect(built.ok, built.log).toBe(true);
    await writeFile(join(artifacts.dir, "package", outputs.tarball!), "not the tarball that was tested");

    const { result, npm } = await publish(artifacts, outputs);
    expect(result.ok).toBe(false);
    expect(result.errors).toEqual([
      expect.stringMatching(
        new RegExp(
          `^package/opencode-ci-auth-${VERSION.replaceAll(".", "\\.")}\\.tgz has SHA-256 [0-9a-f]{64}, but the build job packed ${outputs.sha256}: not publishing it$`,
        ),
      ),
    ]);
    expect(
      npm.filter((line) => line.startsWith("publish")),
      "npm publish never ran",
    ).toEqual([]);
  }, 120_000);
});
