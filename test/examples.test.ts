/**
 * The files in examples/ are meant to be copied as they are: every opencode.*.json must pass the plugin's own
 * validation (with the {env:VAR} values it references defined), and the CI files must grant the OIDC token.
 */
import { readFile, readdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

import { substituteEnvReferences } from "../src/config/env-references.js";
import { parseProviders } from "../src/config/parse.js";
import { SOURCE_TYPES } from "../src/config/schema.js";
import { insecureReason } from "../src/http/transport.js";
import { LOCAL_COMPONENT, preview, TEMPLATE } from "./ci/support/gitlab-ci-local.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLES = join(ROOT, "examples");

/** The configuration the docs call canonical; examples/opencode.github-actions.json must be exactly this, pretty-printed. */
const CANONICAL = {
  $schema: "https://opencode.ai/config.json",
  plugin: ["opencode-ci-auth"],
  provider: {
    miaou: {
      name: "Miaou",
      options: {
        baseURL: "https://api.example.com/v1",
        oauth2: {
          issuer: "https://auth.example.com/realms/acme",
          clientId: "opencode-ci",
          scopes: ["openid"],
          authFlow: "jwt_bearer",
          subjectTokenSource: { type: "github_actions", audience: "https://auth.example.com/realms/acme" },
        },
      },
    },
  },
};

interface OpencodeConfig {
  plugin?: unknown[];
  provider?: Record<string, { options?: Record<string, unknown> & { oauth2?: unknown } }>;
}

const configFiles = (await readdir(EXAMPLES)).filter((f) => /^opencode\..+\.json$/.test(f)).sort();

/** An environment that defines every `{env:VAR}` the text references, as opencode would in a job that sets them. */
function envFor(text: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const match of text.matchAll(/\{env:([^}]+)\}/g)) env[match[1] ?? ""] = `value-of-${match[1]}`;
  return env;
}

/** The config as opencode hands it to the plugin: `{env:VAR}` substituted once in the file's text. */
function asRead(text: string, env: NodeJS.ProcessEnv): OpencodeConfig {
  return JSON.parse(substituteEnvReferences(text, env)) as OpencodeConfig;
}

describe("examples/opencode.*.json", () => {
  it("includes the documented configurations: one per subject-token source, the client-authentication variants and the cloud platforms", () => {
    expect(configFiles).toEqual([
      "opencode.auto.json",
      "opencode.azure-openai.json",
      "opencode.azure-pipelines.json",
      "opencode.azure-provider.json",
      "opencode.bitbucket.json",
      "opencode.buildkite.json",
      "opencode.circleci.json",
      "opencode.env-source.json",
      "opencode.exec.json",
      "opencode.file-source.json",
      "opencode.gcp-metadata.json",
      "opencode.github-actions.json",
      "opencode.gitlab.json",
      "opencode.kubernetes.json",
      "opencode.private-key-jwt.json",
      "opencode.token-exchange.json",
      "opencode.url.json",
      "opencode.vertex-ai.json",
    ]);
  });

  it("covers every subject-token source type", async () => {
    const types = new Set<string>();
    for (const file of configFiles) {
      const text = await readFile(join(EXAMPLES, file), "utf8");
      for (const result of parseProviders(asRead(text, envFor(text)), {})) if (result.ok) types.add(result.config.subjectTokenSource.type);
    }
    expect([...types].sort()).toEqual([...SOURCE_TYPES].sort());
  });

  it.each(configFiles)("%s loads the plugin and every oauth2 block is valid", async (file) => {
    const text = await readFile(join(EXAMPLES, file), "utf8");
    const config = JSON.parse(text) as OpencodeConfig;
    expect(config.plugin).toContain("opencode-ci-auth");
    const parsed = parseProviders(asRead(text, envFor(text)), {});
    expect(parsed.length, "at least one provider with options.oauth2").toBeGreaterThan(0);
    for (const result of parsed) {
      expect(result.ok, result.ok ? "" : result.error.message).toBe(true);
    }
    for (const [id, provider] of Object.entries(config.provider ?? {})) {
      const baseURL = provider.options?.baseURL;
      expect(typeof baseURL, `provider.${id}.options.baseURL`).toBe("string");
      // The config hook refuses a baseURL the access token would reach in clear text.
      expect(insecureReason(new URL(baseURL as string)), `provider.${id}.options.baseURL`).toBeUndefined();
    }
  });

  it("opencode.github-actions.json is the canonical block, and docs/configuration.md quotes it verbatim", async () => {
    const pretty = `${JSON.stringify(CANONICAL, null, 2)}\n`;
    expect(await readFile(join(EXAMPLES, "opencode.github-actions.json"), "utf8")).toBe(pretty);
    expect(await readFile(join(ROOT, "docs", "configuration.md"), "utf8")).toContain(pretty);
  });

  it("the cloud examples: no client for Google STS, Entra's assertion audience, and the azure provider's baseURL without /v1", async () => {
    const parsed = async (file: string) => {
      const [result] = parseProviders(JSON.parse(await readFile(join(EXAMPLES, file), "utf8")) as OpencodeConfig, {});
      if (!result?.ok) throw new Error(`${file} should be valid`);
      return result.config;
    };
    for (const file of ["opencode.azure-openai.json", "opencode.azure-provider.json"]) {
      const config = await parsed(file);
      expect(config.authFlow, file).toBe("client_credentials");
      expect(config.subjectTokenSource.audience, file).toBe("api://AzureADTokenExchange");
    }
    const vertex = await parsed("opencode.vertex-ai.json");
    expect(vertex.clientId).toBeUndefined();
    expect(vertex.serviceAccountImpersonation?.email).toMatch(/@[\w-]+\.iam\.gserviceaccount\.com$/);
    // @ai-sdk/azure appends /v1 (and ?api-version=v1) to a baseURL on *.openai.azure.com (docs/cloud-platforms.md).
    const azure = JSON.parse(await readFile(join(EXAMPLES, "opencode.azure-provider.json"), "utf8")) as OpencodeConfig;
    expect(azure.provider?.azure?.options?.baseURL).toMatch(/^https:\/\/[\w-]+\.openai\.azure\.com\/openai$/);
  });

  it("the {env:VAR} references are needed: without them the confidential examples are refused", async () => {
    for (const file of ["opencode.token-exchange.json", "opencode.private-key-jwt.json"]) {
      const [result] = parseProviders(asRead(await readFile(join(EXAMPLES, file), "utf8"), {}), {});
      expect(result?.ok, file).toBe(false);
    }
  });
});

describe("examples of CI jobs", () => {
  it("github-workflow.yml grants id-token: write and pins actions by full commit SHA", async () => {
    const text = await readFile(join(EXAMPLES, "github-workflow.yml"), "utf8");
    expect(text).toMatch(/^\s+id-token: write\b/m);
    expect(text).toMatch(/^\s+contents: read\b/m);
    const uses = [...text.matchAll(/uses: (\S+)/g)].map((m) => m[1] ?? "");
    expect(uses.length).toBeGreaterThan(0);
    for (const ref of uses) expect(ref).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/);
    expect(text).toMatch(/opencode run --model miaou\//);
  });

  it("gitlab-ci.yml includes the opencode-run component with the id_tokens variable and audience opencode.gitlab.json reads", async () => {
    const text = await readFile(join(EXAMPLES, "gitlab-ci.yml"), "utf8");
    const config = JSON.parse(await readFile(join(EXAMPLES, "opencode.gitlab.json"), "utf8")) as OpencodeConfig;
    const [result] = parseProviders(config, {});
    if (!result?.ok) throw new Error("opencode.gitlab.json should be valid");
    const source = result.config.subjectTokenSource;
    if (source.type !== "gitlab") throw new Error("opencode.gitlab.json should use the gitlab source");

    const pipeline = parse(text) as { include: Array<{ component: string; inputs: Record<string, string> }> };
    const [include] = pipeline.include;
    if (!include) throw new Error("gitlab-ci.yml should include the component");
    expect(include.component).toMatch(/^\$CI_SERVER_FQDN\/[\w.-]+\/opencode-ci-auth\/opencode-run@\d+\.\d+\.\d+$/);
    // GitLab refuses an input the component does not declare, and requires those without a default.
    const spec = (
      parseAllDocuments(await readFile(TEMPLATE, "utf8"))[0]?.toJS() as { spec: { inputs: Record<string, { default?: string } | null> } }
    ).spec.inputs;
    for (const name of Object.keys(include.inputs)) expect(Object.keys(spec), `input ${name}`).toContain(name);
    for (const [name, input] of Object.entries(spec))
      if (input?.default === undefined) expect(include.inputs, `required input ${name}`).toHaveProperty(name);
    expect(include.inputs["id-token-var"] ?? spec["id-token-var"]?.default).toBe(source.var);
    expect(include.inputs.audience).toBe(source.audience);
    expect(include.inputs.model).toMatch(/^miaou\//);

    // As GitLab would expand it (the component address pointed at this working tree): the job's id_tokens carry
    // exactly the variable and aud the config reads, and the example's own keys merge into the component's job.
    const expanded = await preview(text.replace(include.component, LOCAL_COMPONENT));
    expect(expanded.code, expanded.output).toBe(0);
    const job = expanded.expanded?.["opencode-run"] as { id_tokens?: unknown; rules?: unknown; variables?: Record<string, unknown> };
    expect(job.id_tokens).toEqual({ [source.var]: { aud: source.audience } });
    expect(job.rules).toEqual([{ if: "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" }]);
    expect(Object.keys(job.variables ?? {})).toEqual(expect.arrayContaining(["OPENCODE_RUN_PROMPT", "OPENCODE_CI_AUTH_LOG_LEVEL"]));
  });
});
