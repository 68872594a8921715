/**
 * The reusable workflow (.github/workflows/opencode-run.yml), its job run step by step by the harness with the
 * composite setup action nested in it, the real opencode CLI, and the local world (CI token service, IdP, model).
 * The first test calls it exactly as examples/github/on-push-main.yml does, so opencode itself is installed by the
 * action from the local registry; the others take opencode from this repository to stay fast.
 */
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { REPO_ROOT } from "../support/opencode-cli.js";
import { githubActionsEnv, issueConfig } from "../support/issue-config.js";
import { startWorld, type World } from "../support/world.js";
import { evaluate, type Strings, type Stub } from "./support/action-runner.js";
import { artifactStubs, cacheStub, checkoutStub } from "./support/action-stubs.js";
import { createJob, writeJson, type Job } from "./support/job.js";
import { fromNpmOnThisNode, lockedTarballs } from "./support/local-registry.js";
import { publishOpencodeSdk, publishPluginReleases, seedOpencodeSdk, type PluginReleases } from "./support/plugin-releases.js";
import { readWorkflow, runWorkflowJob, setupActionStub, type Workflow } from "./support/workflow-job.js";

const WORKFLOW = join(REPO_ROOT, ".github", "workflows", "opencode-run.yml");
const SETUP_USES = "OWNER/opencode-ci-auth/.github/actions/setup";

/** Installs and opencode runs take seconds each, several times that on a loaded 2-core machine. */
/** A deadline for installs and a real opencode run: a minute alone, several beside another suite on 2 cores. */
const HEAVY = 300_000;

let releases: PluginReleases;
let world: World;
let workflow: Workflow;
/** One cache service for the file, as GitHub's is for a repository: later jobs restore what the first one saved. */
let cache: ReturnType<typeof cacheStub>;
/**
 * One runner HOME for the file's jobs, as on a self-hosted runner: a later job finds the plugin the first one
 * prepared, and the action keeps it after checking its version (each job still has its own workspace and temp).
 */
let runnerHome: string;
const jobs: Job[] = [];

beforeAll(async () => {
  [releases, world, workflow] = await Promise.all([
    publishPluginReleases(),
    startWorld({ model: { models: ["mock-model", "your-model"] } }),
    readWorkflow(WORKFLOW),
  ]);
  cache = cacheStub(await mkdtemp(join(tmpdir(), "opencode-ci-auth-cache-")));
  runnerHome = await mkdtemp(join(tmpdir(), "opencode-ci-auth-runner-home-"));
  // opencode itself, for the action's install-opencode step: the registry tarballs this repository installed.
  const opencode = ["node_modules/opencode-ai", "node_modules/opencode-linux-x64", "node_modules/opencode-linux-x64-baseline"];
  for (const tarball of await lockedTarballs(REPO_ROOT, opencode, join(tmpdir(), "opencode-ci-auth-opencode-tarballs")))
    releases.registry.publish(tarball);
  // opencode's plugin SDK, for the setup action's `opencode-ci-auth prepare`.
  await publishOpencodeSdk(releases.registry);
}, 90_000);
afterAll(async () => {
  await Promise.all(jobs.map((j) => j.dispose()));
  await Promise.all([releases?.close(), world?.close(), runnerHome && rm(runnerHome, { recursive: true, force: true })]);
});

interface Setup {
  job: Job;
  cache: ReturnType<typeof cacheStub>;
  artifacts: ReturnType<typeof artifactStubs>;
}

/** A job whose repository holds `config` at `configPath` (none when undefined). */
async function setupJob(config: unknown, configPath = ".opencode-ci/opencode.json", options: { seedSdk?: boolean } = {}): Promise<Setup> {
  const seedSdk = options.seedSdk ?? true;
  const job = await createJob({ registry: releases.registry, env: { ...githubActionsEnv(world) }, home: runnerHome, seedSdk });
  jobs.push(job);
  if (config !== undefined) {
    await writeJson(join(job.workspace, configPath), config);
    // opencode installs its SDK into OPENCODE_CONFIG_DIR too; seed it (it is not the plugin under test), unless the
    // test leaves that to the setup action's `opencode-ci-auth prepare`.
    if (seedSdk && configPath.endsWith("/opencode.json")) await seedOpencodeSdk(join(job.workspace, configPath, ".."));
  }
  return { job, cache, artifacts: artifactStubs(join(job.root, "artifacts")) };
}

/**
 * The setup action as the workflow calls it, except that opencode comes from this repository (on PATH) instead of
 * a second 180 MB install: the first test covers install-opencode.
 */
function setupWithRepoOpencode(s: Setup): { stub: Stub; calls: Strings[] } {
  const inner = setupActionStub(s.job, s.cache, { "install-opencode": "false" });
  return {
    calls: inner.calls,
    stub: async (call) => {
      const result = await inner.stub(call);
      return { ...result, path: [join(REPO_ROOT, "node_modules", ".bin"), ...(result.path ?? [])] };
    },
  };
}

/**
 * The setup action as the workflow calls it, with an `opencode` on PATH that only records, for each call, the
 * allow-list variables it was given (into `record`) and prints "recorded".
 */
async function setupWithRecordingOpencode(s: Setup, record: string): Promise<Stub> {
  const bin = join(s.job.root, "recording-bin");
  await mkdir(bin);
  const report = (name: string) => `${name}=\${${name}-<unset>}`;
  const names = [
    "OPENCODE_CI_AUTH_ALLOWED_ISSUERS",
    "OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS",
    "OPENCODE_CI_AUTH_ALLOWED_AUDIENCES",
    "OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS",
  ];
  // It reads the prompt from stdin as opencode does: a stub that exited without reading could end the workflow's
  // `printf | opencode run` pipe before printf wrote, and under pipefail printf's SIGPIPE (141) fails the step, which
  // happened on a loaded machine.
  await writeFile(
    join(bin, "opencode"),
    `#!/bin/sh\ncat > /dev/null\nprintf '%s\\n' "$1 ${names.map(report).join(" ")}" >> "${record}"\necho recorded\n`,
  );
  await chmod(join(bin, "opencode"), 0o755);
  const inner = setupActionStub(s.job, s.cache, { "install-opencode": "false" });
  return async (call) => {
    const result = await inner.stub(call);
    return { ...result, path: [bin, ...(result.path ?? [])] };
  };
}

function run(s: Setup, inputs: Record<string, unknown>, setup: Stub) {
  return runWorkflowJob(workflow, "opencode-run", inputs, {
    env: s.job.env,
    workspace: s.job.workspace,
    runnerTemp: s.job.runnerTemp,
    stubs: {
      "actions/checkout": checkoutStub().stub,
      [SETUP_USES]: setup,
      "actions/upload-artifact": s.artifacts.upload.stub,
    },
  });
}

const chatRequests = (from: number) => world.model.requests.slice(from).filter((r) => r.path === "/v1/chat/completions");

describe("the reusable opencode-run workflow", () => {
  it(
    "runs as examples/github/on-push-main.yml calls it: opencode and the plugin installed, text uploaded and summarized",
    async () => {
      const example = (await readWorkflow(join(REPO_ROOT, "examples", "github", "on-push-main.yml"))) as unknown as {
        jobs: { opencode: { uses: string; with: Record<string, unknown>; permissions: Strings } };
      };
      expect(example.jobs.opencode.uses).toMatch(/^OWNER\/opencode-ci-auth\/\.github\/workflows\/opencode-run\.yml@/);
      expect(example.jobs.opencode.permissions).toEqual({ contents: "read", "id-token": "write" });
      // A fresh runner: nothing in opencode's config dirs, which the setup action prepares (its input prepare is on).
      const s = await setupJob(issueConfig(world), undefined, { seedSdk: false });
      const before = { registry: releases.registry.requests.length, model: world.model.requests.length, grants: world.idp.grants.length };

      const result = await run(s, example.jobs.opencode.with, setupActionStub(s.job, s.cache).stub);
      expect(result.ok, result.log).toBe(true);

      // The action prepared both config dirs opencode installs its SDK into: the global one and OPENCODE_CONFIG_DIR (set
      // by the workflow before the action). opencode then installed nothing there: npm's install would have rewritten
      // the lockfile and left its hidden one (node_modules/.package-lock.json), which prepare does not keep.
      const sdkCache = join(s.job.runnerTemp, "opencode-ci-auth-setup", "opencode-sdk");
      const [staged] = await readdir(sdkCache);
      const stagedLock = await readFile(join(sdkCache, staged ?? "", "package-lock.json"), "utf8");
      for (const dir of [join(s.job.home, ".config", "opencode"), join(s.job.workspace, ".opencode-ci")]) {
        expect(result.log).toContain(`opencode-ci-auth prepare: prepared ${dir}`);
        expect(await readFile(join(dir, "package-lock.json"), "utf8"), dir).toBe(stagedLock);
        expect(await readdir(join(dir, "node_modules")), dir).not.toContain(".package-lock.json");
      }

      const setup = result.step("setup").outputs;
      expect(setup).toMatchObject({
        version: String(example.jobs.opencode.with["plugin-version"]),
        "opencode-version": String(example.jobs.opencode.with["opencode-version"]),
      });
      // opencode came from the action's install, the only `opencode` on the job's PATH.
      expect(result.path).toEqual([
        join(s.job.runnerTemp, "opencode-ci-auth-setup", `opencode-ai-${setup["opencode-version"]}`, "node_modules", ".bin"),
      ]);
      expect(result.env.OPENCODE_CONFIG_DIR).toBe(join(s.job.workspace, ".opencode-ci"));

      // The answer: an artifact named by the workflow's output, and the job summary.
      const name = result.workflowOutputs["artifact-name"] ?? "";
      expect(name).toMatch(/^opencode-run-Linux-4242-1-\d+$/);
      expect(await s.artifacts.files(name)).toEqual(["opencode-output.md"]);
      const text = await readFile(join(s.artifacts.dir, name, "opencode-output.md"), "utf8");
      expect(text).toContain("Hello from the mock model");
      expect(result.summary).toContain("`miaou/your-model`");
      expect(result.summary).toContain(`opencode-ci-auth ${setup.version} · exit code 0`);
      expect(result.summary).toContain("Hello from the mock model");

      // Through the plugin: a grant at the IdP, and the model saw the prompt verbatim with the IdP's token.
      expect(world.idp.grants.slice(before.grants).filter((g) => g.ok)).toHaveLength(1);
      const chats = chatRequests(before.model);
      expect(chats.length).toBeGreaterThan(0);
      expect(JSON.stringify(chats.map((c) => c.body))).toContain(String(example.jobs.opencode.with.prompt));

      // One download of each package by the action's npm (npm's CLI, on this Node). opencode fetched opencode again never,
      // and the plugin at most for the background install its second plugin loader starts for a bare name
      // (docs/performance.md), which runs npm's code under Bun and so says another Node version.
      const requests = releases.registry.requests.slice(before.registry);
      const byAction = fromNpmOnThisNode;
      const tarballs = (rs: typeof requests) => rs.map((r) => r.path).filter((p) => p.startsWith("/-/tarballs/"));
      expect(tarballs(requests.filter(byAction)).filter((p) => p.startsWith("/-/tarballs/opencode-ci-auth-"))).toEqual([
        `/-/tarballs/opencode-ci-auth-${setup.version}.tgz`,
      ]);
      expect(tarballs(requests).filter((p) => p.startsWith("/-/tarballs/opencode-ai-"))).toEqual([
        `/-/tarballs/opencode-ai-${setup["opencode-version"]}.tgz`,
      ]);
      expect(tarballs(requests.filter((r) => !byAction(r))).filter((p) => !p.startsWith("/-/tarballs/opencode-ci-auth-"))).toEqual([]);
    },
    2 * HEAVY,
  ); // two installs (opencode is 180 MB) and a run: a minute alone, twice that beside the rest of test/ci

  it(
    "passes prompt and model through env: shell syntax in the prompt reaches the model as text",
    async () => {
      const s = await setupJob(issueConfig(world), "ci/opencode-ci.json");
      const prompt = `--help "$(touch pwned-1)" \`touch pwned-2\`; touch pwned-3 \${{ github.token }} 'quoted'\n::error::not-a-command %0A`;
      const before = world.model.requests.length;
      const result = await run(
        s,
        { model: "miaou/mock-model", prompt, "opencode-config-path": "ci/opencode-ci.json", "plugin-version": releases.packed },
        setupWithRepoOpencode(s).stub,
      );
      expect(result.ok, result.log).toBe(true);
      // Another file name than opencode.json: the workflow passes it as OPENCODE_CONFIG.
      expect(result.env).toEqual({ OPENCODE_CONFIG: join(s.job.workspace, "ci/opencode-ci.json") });
      // Byte for byte: the workflow hands it to opencode on stdin (as an argument, opencode would quote it).
      const userMessages = chatRequests(before).flatMap((c) =>
        (c.body as { messages: Array<{ role: string; content: unknown }> }).messages.filter((m) => m.role === "user").map((m) => m.content),
      );
      expect(userMessages).toContain(prompt);
      expect((await readdir(s.job.workspace)).filter((f) => f.startsWith("pwned"))).toEqual([]);
      expect(result.errors).toEqual([]);
    },
    HEAVY,
  );

  it(
    "gives `opencode run` the allow-lists that are not empty, verbatim, and leaves the others unset",
    async () => {
      const s = await setupJob(issueConfig(world));
      const record = join(s.job.root, "opencode-calls");
      const issuers = "https://idp.example/realms/a,https://idp.example/realms/$HOME/$(id)";
      const audiences = "api://opencode";
      const sourceUrls = "https://tokens.example/ci?aud=api%3A%2F%2Fopencode&x=`id`";
      const result = await run(
        s,
        {
          model: "miaou/mock-model",
          prompt: "hi",
          "plugin-version": releases.packed,
          "allowed-issuers": issuers,
          "allowed-audiences": audiences,
          "allowed-source-urls": sourceUrls,
        },
        await setupWithRecordingOpencode(s, record),
      );
      expect(result.ok, result.log).toBe(true);
      expect((await readFile(record, "utf8")).trim().split("\n")).toEqual([
        `run OPENCODE_CI_AUTH_ALLOWED_ISSUERS=${issuers} OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS=<unset> OPENCODE_CI_AUTH_ALLOWED_AUDIENCES=${audiences} OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS=${sourceUrls}`,
      ]);
      // Set for that step's opencode only: not written to GITHUB_ENV for the steps after it.
      expect(Object.keys(result.env).filter((k) => k.startsWith("OPENCODE_CI_AUTH_"))).toEqual([]);

      // By default none is set (an empty variable could read as "allow nothing").
      const t = await setupJob(issueConfig(world));
      const defaults = join(t.job.root, "opencode-calls");
      const plain = await run(
        t,
        { model: "miaou/mock-model", prompt: "hi", "plugin-version": releases.packed },
        await setupWithRecordingOpencode(t, defaults),
      );
      expect(plain.ok, plain.log).toBe(true);
      expect((await readFile(defaults, "utf8")).trim()).toBe(
        "run OPENCODE_CI_AUTH_ALLOWED_ISSUERS=<unset> OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS=<unset> OPENCODE_CI_AUTH_ALLOWED_AUDIENCES=<unset> OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS=<unset>",
      );
    },
    HEAVY,
  );

  it("fails with the path when the config file is missing, before installing anything", async () => {
    const s = await setupJob(undefined);
    const setup = setupWithRepoOpencode(s);
    const result = await run(s, { model: "miaou/mock-model", prompt: "hi" }, setup.stub);
    expect(result.ok).toBe(false);
    expect(result.step("config").outcome).toBe("failure");
    expect(result.errors).toEqual([expect.stringContaining('opencode-config-path ".opencode-ci/opencode.json" does not exist')]);
    expect(setup.calls).toEqual([]);
    expect(result.step("run").outcome).toBe("skipped");
  });

  it(
    "refuses a config whose plugin spec the setup step did not prepare, before opencode could download it",
    async () => {
      const config = { ...issueConfig(world), plugin: [`opencode-ci-auth@${releases.older}`] };
      const s = await setupJob(config);
      const result = await run(
        s,
        { model: "miaou/mock-model", prompt: "hi", "plugin-version": releases.packed },
        setupWithRepoOpencode(s).stub,
      );
      expect(result.ok).toBe(false);
      expect(result.errors).toEqual([
        expect.stringContaining(
          `asks for "opencode-ci-auth@${releases.older}", but plugin-version "${releases.packed}" installed opencode-ci-auth ${releases.packed}`,
        ),
      ]);
      // It stopped before opencode: the run step names its artifact and writes the summary only once the check passed.
      expect(result.step("run").outcome).toBe("failure");
      expect(result.step("run").outputs).toEqual({});
      expect(result.summary).toBe("");
    },
    HEAVY,
  );

  it(
    "release.yml's smoke job (run on each OS after publishing) passes here against the packed release",
    async () => {
      const release = await readWorkflow(join(REPO_ROOT, ".github", "workflows", "release.yml"));
      const s = await setupJob(undefined);
      const setup = setupWithRepoOpencode(s);
      const result = await runWorkflowJob(
        release,
        "smoke",
        {},
        {
          env: s.job.env,
          workspace: s.job.workspace,
          runnerTemp: s.job.runnerTemp,
          contexts: { needs: { publish: { outputs: { version: releases.packed } } }, matrix: { os: "ubuntu-latest" } },
          stubs: { "actions/checkout": checkoutStub().stub, "./.github/actions/setup": setup.stub },
        },
      );
      expect(result.ok, result.log).toBe(true);
      expect(setup.calls).toEqual([expect.objectContaining({ version: releases.packed, "install-opencode": "true", cache: "false" })]);
      expect(result.log).toContain(`loaded opencode-ci-auth ${releases.packed} from the prepared directory`);
    },
    HEAVY,
  );

  it("the setup action resolves opencode too, whatever the case of install-opencode (as `if:` compares it)", async () => {
    const s = await setupJob(undefined);
    const run = await s.job.resolveOnly({ "install-opencode": "True", "opencode-version": "^1.18.0", version: releases.packed });
    expect(run.ok, run.log).toBe(true);
    const opencode = (
      JSON.parse(await readFile(join(REPO_ROOT, "node_modules", "opencode-ai", "package.json"), "utf8")) as { version: string }
    ).version;
    expect(run.step("resolve").outputs).toMatchObject({ version: releases.packed, "opencode-version": opencode });
  });

  it("takes runs-on as one label or a JSON list of labels", () => {
    const expression = String(workflow.jobs["opencode-run"]?.["runs-on"]).replace(/^\$\{\{\s*|\s*\}\}$/g, "");
    expect(evaluate(expression, { inputs: { "runs-on": "ubuntu-latest" } }).coerceString()).toBe("ubuntu-latest");
    const list = evaluate(expression, { inputs: { "runs-on": '["self-hosted", "linux"]' } });
    expect(JSON.parse(JSON.stringify(list))).toBeTruthy();
    expect(list.kind).toBe(1 /* Array */);
  });
});
