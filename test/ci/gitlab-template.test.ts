/**
 * The GitLab component's structure: the catalog layout, the inputs and their defaults, the `id_tokens` it declares,
 * that no input is pasted into script text, that the script parses as sh and bash, and that gitlab-ci-local (which
 * validates against GitLab's CI schema and applies the inputs' `regex`) accepts it and refuses bad inputs.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

import { gitlab } from "../../src/subject-token/gitlab.js";
import { COMPAT_VERSIONS } from "../compat/versions.js";
import { pipelineWith, preview, TEMPLATE } from "./support/gitlab-ci-local.js";

const run = promisify(execFile);

interface Input {
  default?: unknown;
  description?: string;
  regex?: string;
}
type Job = Record<string, unknown> & {
  id_tokens?: Record<string, { aud?: unknown }>;
  cache?: Array<{ key?: unknown; paths?: unknown }>;
  variables?: Record<string, string | { value: string; expand?: boolean }>;
  script?: string[];
};

const documents = parseAllDocuments(await readFile(TEMPLATE, "utf8"));
const header = documents[0]?.toJS() as { spec: { inputs: Record<string, Input | null> } };
const body = documents[1]?.toJS() as Record<string, Job>;
const inputs = header.spec.inputs;
const job = body["opencode-run"] as Job;
/** The folder the job's `cache:` keeps, relative to the checkout. */
const SDK_CACHE = ".opencode-ci-auth-cache";
const INTERPOLATION = /\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g;

/** Every string in `value` (keys included) with the path that leads to it. */
function strings(value: unknown, path: string[] = []): Array<{ path: string[]; text: string }> {
  if (typeof value === "string") return [{ path, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, [...path, String(i)]));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => [{ path: [...path, `key:${k}`], text: k }, ...strings(v, [...path, k])]);
  }
  return [];
}

const minimalInputs = { model: "miaou/mock-model", prompt: "Summarize the changes.", audience: "https://auth.example.com/realms/acme" };
const previewJob = async (componentInputs: Record<string, string>) => {
  const result = await preview(pipelineWith(componentInputs));
  return { ...result, job: result.expanded?.["opencode-run"] as Job | undefined };
};

describe("templates/opencode-run.yml", () => {
  it("is a catalog component: a spec header, then one job", () => {
    expect(documents).toHaveLength(2);
    for (const doc of documents) expect(doc.errors).toEqual([]);
    expect(Object.keys(header)).toEqual(["spec"]);
    expect(Object.keys(body)).toEqual(["opencode-run"]);
  });

  it("declares the documented inputs and defaults; model, prompt and audience are required", () => {
    const defaults = Object.fromEntries(Object.entries(inputs).map(([name, spec]) => [name, spec?.default]));
    expect(defaults).toEqual({
      model: undefined,
      prompt: undefined,
      "config-path": ".opencode-ci/opencode.json",
      "id-token-var": gitlab.schema.parse({ type: "gitlab" }).var,
      audience: undefined,
      "opencode-version": COMPAT_VERSIONS[0],
      "plugin-version": "latest",
      prepare: true,
      cache: false,
      "allowed-issuers": "",
      "allowed-token-endpoints": "",
      "allowed-audiences": "",
      "allowed-source-urls": "",
      image: "node:22",
      stage: "test",
    });
    for (const [name, spec] of Object.entries(inputs)) expect(spec?.description, `${name} has a description`).toBeTruthy();
  });

  it("declares id_tokens: the variable named by id-token-var, with the audience input as aud", () => {
    expect(job.id_tokens).toEqual({ "$[[ inputs.id-token-var ]]": { aud: "$[[ inputs.audience ]]" } });
  });

  it("interpolates inputs only into YAML values, never into script text; variables from inputs are not expanded", () => {
    const uses = strings(job).filter(({ text }) => text.includes("$[["));
    const used = new Set(uses.flatMap(({ text }) => [...text.matchAll(INTERPOLATION)].map((m) => m[1])));
    expect([...used].sort()).toEqual(Object.keys(inputs).sort());
    for (const { path, text } of uses) {
      const where = path.join(".");
      expect(["script", "before_script", "after_script"].includes(path[0] ?? ""), `${where} is script text`).toBe(false);
      // The whole value is one interpolation: no input is glued into a larger string.
      expect(text, where).toMatch(/^\$\[\[ inputs\.[\w-]+ \]\]$/);
      if (path[0] === "variables") {
        const variable = job.variables?.[path[1] ?? ""];
        expect(variable, `${where}: expand: false, so a $ in an input is not expanded`).toMatchObject({ expand: false });
      } else {
        expect(["stage", "image", "id_tokens"], where).toContain(path[0]);
      }
    }
    for (const line of job.script ?? []) expect(line).not.toContain("$[[");
  });

  it("runs opencode with the prompt after -- and the model in --model=, both quoted", () => {
    const script = (job.script ?? []).join("\n");
    expect(script).toContain('opencode run --model="$OPENCODE_RUN_MODEL" -- "$OPENCODE_RUN_PROMPT"');
    expect(script).toContain("export OPENCODE_CONFIG_DIR");
  });

  it("installs the plugin with install scripts off, at one exact version, and checks the version of one it finds", () => {
    const script = (job.script ?? []).join("\n");
    const installs = script.split("\n").filter((line) => /\bnpm install\b/.test(line) && line.includes("opencode-ci-auth@"));
    expect(installs).toEqual([expect.stringContaining('npm install --prefix "$OPENCODE_RUN_PLUGIN_DIR" --ignore-scripts --save-exact')]);
    expect(installs[0]).toContain('"opencode-ci-auth@$OPENCODE_RUN_PLUGIN_EXACT"');
    expect(script).toContain('if [ "$OPENCODE_RUN_PLUGIN_FOUND" = "$OPENCODE_RUN_PLUGIN_EXACT" ]; then');
  });

  it("passes each allow-list input to `opencode run` as the plugin's variable, only when it is not empty", () => {
    const script = (job.script ?? []).join("\n");
    for (const [input, variable] of [
      ["allowed-issuers", "OPENCODE_CI_AUTH_ALLOWED_ISSUERS"],
      ["allowed-token-endpoints", "OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS"],
      ["allowed-audiences", "OPENCODE_CI_AUTH_ALLOWED_AUDIENCES"],
      ["allowed-source-urls", "OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS"],
    ] as const) {
      const carrier = `OPENCODE_RUN_${variable.replace("OPENCODE_CI_AUTH_", "")}`;
      expect(job.variables?.[carrier]).toEqual({ value: `$[[ inputs.${input} ]]`, expand: false });
      expect(script).toContain(`if [ -n "$${carrier}" ]; then export ${variable}="$${carrier}"; fi`);
      // Never set for the whole job: the job's variables do not name it.
      expect(Object.keys(job.variables ?? {})).not.toContain(variable);
    }
  });

  it("keeps prepare's SDK install in the job's cache: one key per opencode version, the folder prepare is given", () => {
    expect(job.cache).toEqual([{ key: "opencode-ci-auth-sdk-$OPENCODE_RUN_OPENCODE_VERSION", paths: [`${SDK_CACHE}/`] }]);
    expect(job.variables?.OPENCODE_RUN_CACHE).toEqual({ value: "$[[ inputs.cache ]]", expand: false });
  });

  describe("the prepare step, run by bash with a recording node and opencode", () => {
    const step = (job.script ?? []).find((s) => s.includes("# opencode-run: prepare opencode's config directories")) ?? "";

    interface StepRun {
      calls: string[][];
      stdout: string;
      /** The cache folder's entries after the step. */
      cached: string[];
      gitignore: string;
    }

    /** Runs the step in a scratch checkout; `restored` lays out the cache folder first, as GitLab's restore would. */
    async function runStep(env: Record<string, string>, restored?: (cache: string) => Promise<void>): Promise<StepRun> {
      const dir = await mkdtemp(join(tmpdir(), "opencode-ci-auth-prepare-step-"));
      try {
        const bin = join(dir, "bin");
        const project = join(dir, "project");
        const cache = join(project, SDK_CACHE);
        await mkdir(bin);
        await mkdir(project);
        await restored?.(cache);
        const record = join(dir, "calls");
        // node records its arguments (one JSON line per call); opencode prints a version, as `opencode --version` does.
        await writeFile(
          join(bin, "node"),
          `#!/bin/sh\n${process.execPath} -e 'require("fs").appendFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)) + "\\n")' "${record}" "$@"\n`,
          { mode: 0o755 },
        );
        await writeFile(join(bin, "opencode"), "#!/bin/sh\necho 1.2.3\n", { mode: 0o755 });
        const { stdout } = await run("bash", ["-euo", "pipefail", "-c", step], {
          cwd: project,
          env: {
            PATH: `${bin}:/usr/bin:/bin`,
            OPENCODE_RUN_PLUGIN_DIR: "/plugin",
            OPENCODE_RUN_PLUGIN_MANIFEST: "/plugin/package.json",
            ...env,
          },
        });
        const calls = (await readFile(record, "utf8").catch(() => ""))
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line) as string[]);
        return {
          calls: calls.filter((c) => !c.includes("--help")).map((c) => c.map((arg) => arg.replace(project, "<project>"))),
          stdout,
          cached: (await readdir(cache)).sort(),
          gitignore: await readFile(join(cache, ".gitignore"), "utf8"),
        };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }

    const CLI = "/plugin/node_modules/opencode-ci-auth/dist/cli/main.js";
    const restoredInstall = async (cache: string) => {
      await mkdir(join(cache, "@opencode-ai+plugin@1.2.3"), { recursive: true });
      await writeFile(join(cache, "@opencode-ai+plugin@1.2.3", "package.json"), "{}");
    };

    it("with cache on, prepares with --cache-dir in the checkout's cache folder, which git ignores", async () => {
      const ran = await runStep({ OPENCODE_RUN_PREPARE: "true", OPENCODE_RUN_CACHE: "true" }, restoredInstall);
      expect(ran.calls).toEqual([[CLI, "prepare", "--opencode-version", "1.2.3", "--cache-dir", `<project>/${SDK_CACHE}`]]);
      expect(ran.cached).toEqual([".gitignore", "@opencode-ai+plugin@1.2.3"]);
      expect(ran.gitignore).toBe("*\n");
    });

    it("with cache off (the default), prepares without a cache, and the folder GitLab saves holds only its .gitignore", async () => {
      const ran = await runStep({ OPENCODE_RUN_PREPARE: "true", OPENCODE_RUN_CACHE: "false" }, restoredInstall);
      expect(ran.calls).toEqual([[CLI, "prepare", "--opencode-version", "1.2.3"]]);
      expect(ran.cached).toEqual([".gitignore"]);
    });

    it("with prepare off, prepares nothing and says so", async () => {
      const ran = await runStep({ OPENCODE_RUN_PREPARE: "false", OPENCODE_RUN_CACHE: "true" });
      expect(ran.calls).toEqual([]);
      expect(ran.stdout).toContain("opencode-run: prepare is off");
      expect(ran.cached).toEqual([".gitignore"]);
    });
  });

  it.each([["bash"], ["sh"]])("its script parses with %s -n", async (shell) => {
    const dir = await mkdtemp(join(tmpdir(), "opencode-ci-auth-script-"));
    try {
      const file = join(dir, "script.sh");
      await writeFile(file, (job.script ?? []).join("\n"));
      await expect(run(shell, ["-n", file])).resolves.toBeDefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the component in gitlab-ci-local (GitLab's CI schema and input rules)", () => {
  it("expands with the defaults: id_tokens OPENCODE_ID_TOKEN with the given aud", async () => {
    const { code, output, job: expanded } = await previewJob(minimalInputs);
    expect(code, output).toBe(0);
    expect(expanded?.id_tokens).toEqual({ OPENCODE_ID_TOKEN: { aud: minimalInputs.audience } });
    expect(expanded).toMatchObject({ stage: "test", image: { name: "node:22" } });
  });

  it("names the ID token variable after id-token-var", async () => {
    const { code, output, job: expanded } = await previewJob({ ...minimalInputs, "id-token-var": "AI_ID_TOKEN" });
    expect(code, output).toBe(0);
    expect(expanded?.id_tokens).toEqual({ AI_ID_TOKEN: { aud: minimalInputs.audience } });
  });

  it.each([
    ["a missing prompt", { model: "miaou/m", audience: "a" }, "`prompt` input: required value has not been provided"],
    ["a missing audience", { model: "miaou/m", prompt: "p" }, "`audience` input: required value has not been provided"],
    ["a model without a provider", { ...minimalInputs, model: "gpt-4" }, "`model` input: `gpt-4` does not match required regex"],
    [
      "an id-token-var that is not a variable name",
      { ...minimalInputs, "id-token-var": "ID TOKEN" },
      "`id-token-var` input: `ID TOKEN` does not match required regex",
    ],
    [
      "a plugin-version that is a path",
      { ...minimalInputs, "plugin-version": "file:../x" },
      "`plugin-version` input: `file:../x` does not match required regex",
    ],
  ])("refuses %s", async (_name, componentInputs, message) => {
    const { code, output } = await previewJob(componentInputs);
    expect(code).not.toBe(0);
    expect(output).toContain(message);
  });
});
