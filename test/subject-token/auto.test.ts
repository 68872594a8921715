/**
 * AutoSource: platform detection from the environment only, the detected platform's own source and fix, and
 * the list of what was looked for when nothing matches.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { DEFAULT_BUILDKITE_TIMEOUT_SECONDS, DEFAULT_ID_TOKEN_VAR, DEFAULT_KUBERNETES_TOKEN_PATH } from "../../src/config/defaults.js";
import { SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import type { AutoSource } from "../../src/subject-token/auto.js";
import { BuildkiteSource } from "../../src/subject-token/buildkite.js";
import type { AutoSettings } from "../../src/subject-token/definition.js";
import { LOOKED_FOR, PLATFORMS, createSubjectTokenSource, detectPlatformFromEnv } from "../../src/subject-token/sources.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { fp, rejectionOf } from "../support/harness.js";
import { startTokenEndpoint } from "../support/token-endpoint.js";

const AUDIENCE = "https://auth.example.com/realms/acme";

let ci: CiIssuer;
let dir: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "auto-source-"));
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `auto` as the table builds it from a validated block. */
function auto(options: Partial<AutoSettings> = {}): AutoSource {
  return createSubjectTokenSource({
    type: "auto",
    audience: AUDIENCE,
    var: DEFAULT_ID_TOKEN_VAR,
    path: DEFAULT_KUBERNETES_TOKEN_PATH,
    serviceConnectionId: undefined,
    ...options,
  }) as AutoSource;
}

const context = (env: NodeJS.ProcessEnv): SubjectTokenContext => ({ providerId: "miaou", env, fetch: globalThis.fetch, timeoutMs: 5000 });

/** The environment each platform sets, reduced to the detection signal. */
const SIGNALS = {
  github_actions: { GITHUB_ACTIONS: "true" },
  gitlab: { GITLAB_CI: "true" },
  circleci: { CIRCLECI: "true" },
  buildkite: { BUILDKITE: "true" },
  azure_pipelines: { TF_BUILD: "True" },
  bitbucket: { BITBUCKET_BUILD_NUMBER: "7" },
  kubernetes: { KUBERNETES_SERVICE_HOST: "10.0.0.1" },
  gcp_metadata: { CLOUD_RUN_JOB: "ai-review" },
} satisfies Record<string, NodeJS.ProcessEnv>;

describe("detectPlatformFromEnv", () => {
  it.each(Object.entries(SIGNALS))("detects %s from its variable", (id, env) => {
    expect(detectPlatformFromEnv(env)?.id).toBe(id);
  });

  it("covers every platform, and the list of what is looked for names them all", () => {
    expect(PLATFORMS.map((p) => p.id).sort()).toEqual(Object.keys(SIGNALS).sort());
    expect(LOOKED_FOR).toBe(
      "GITHUB_ACTIONS=true, GITLAB_CI=true, CIRCLECI=true, BUILDKITE=true, TF_BUILD=True or SYSTEM_OIDCREQUESTURI, BITBUCKET_BUILD_NUMBER, KUBERNETES_SERVICE_HOST, GCE_METADATA_IP, GCE_METADATA_HOST or CLOUD_RUN_JOB",
    );
  });

  it("prefers the CI platform over the Kubernetes pod or Google Cloud machine its runner sits on", () => {
    expect(detectPlatformFromEnv({ ...SIGNALS.kubernetes, ...SIGNALS.gitlab })?.id).toBe("gitlab");
    expect(
      detectPlatformFromEnv({ ...SIGNALS.gcp_metadata, ...SIGNALS.github_actions, GCE_METADATA_HOST: "metadata.google.internal" })?.id,
    ).toBe("github_actions");
    expect(detectPlatformFromEnv({ ...SIGNALS.gcp_metadata, ...SIGNALS.kubernetes })?.id).toBe("kubernetes");
  });

  it("does not take K_SERVICE alone for Google Cloud: every Knative platform sets it", () => {
    expect(detectPlatformFromEnv({ K_SERVICE: "ai-review", K_REVISION: "ai-review-00001", K_CONFIGURATION: "ai-review" })).toBeUndefined();
    // Knative on Kubernetes: the pod is detected as such, as before.
    expect(detectPlatformFromEnv({ K_SERVICE: "ai-review", ...SIGNALS.kubernetes })?.id).toBe("kubernetes");
    // An explicit metadata server, or a Cloud Run job, is Google Cloud.
    expect(detectPlatformFromEnv({ K_SERVICE: "ai-review", GCE_METADATA_HOST: "metadata.google.internal" })?.id).toBe("gcp_metadata");
    expect(detectPlatformFromEnv({ GCE_METADATA_IP: "169.254.169.254" })?.id).toBe("gcp_metadata");
  });

  it('ignores values that do not mean "on" and empty variables', () => {
    expect(
      detectPlatformFromEnv({ GITHUB_ACTIONS: "false", GITLAB_CI: "", KUBERNETES_SERVICE_HOST: " ", TF_BUILD: "False" }),
    ).toBeUndefined();
    expect(detectPlatformFromEnv({ SYSTEM_OIDCREQUESTURI: "https://dev.azure.com/x" })?.id).toBe("azure_pipelines");
  });
});

describe("AutoSource", () => {
  it.each(Object.entries(SIGNALS))("on %s uses that platform's source", (id, env) => {
    const { source } = auto({ serviceConnectionId: "sc-1" }).resolve(env, "miaou");
    expect(source.type).toBe(id);
    expect(source.expectedAudience).toBe(AUDIENCE);
  });

  it("on Buildkite uses the buildkite source's own default time limit, which covers the agent's retries", () => {
    const { source } = auto().resolve(SIGNALS.buildkite, "miaou");
    expect(source).toBeInstanceOf(BuildkiteSource);
    expect((source as BuildkiteSource).timeoutMs).toBe(DEFAULT_BUILDKITE_TIMEOUT_SECONDS * 1000);
    expect(DEFAULT_BUILDKITE_TIMEOUT_SECONDS).toBe(30);
  });

  it("with nothing detected, says what was looked for", async () => {
    const err = (await rejectionOf(auto().getSubjectToken(context({ CI: "true", JENKINS_URL: "https://jenkins.example" })))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      `auto subject token: no supported platform detected (looked for ${LOOKED_FOR}). Run inside a CI job, or set subjectTokenSource.type to the source you need (docs/configuration.md#auto).`,
    );
  });

  it("reads GitLab's id_tokens variable (default or configured)", async () => {
    const token = await ci.mint({ style: "gitlab", aud: AUDIENCE });
    expect(fp(await auto().getSubjectToken(context({ GITLAB_CI: "true", OPENCODE_ID_TOKEN: token })))).toBe(fp(token));
    expect(fp(await auto({ var: "MY_TOKEN" }).getSubjectToken(context({ GITLAB_CI: "true", MY_TOKEN: token })))).toBe(fp(token));
  });

  it("on Azure Pipelines without serviceConnectionId, requests the pipeline's own token; with one, that connection's", async () => {
    const endpoint = await startTokenEndpoint();
    try {
      const pipelineToken = await ci.mint({ style: "plain", aud: AUDIENCE, claims: { sub: "p://acme/app/app-ci" } });
      endpoint.answer(() => ({ status: 200, body: JSON.stringify({ oidcToken: pipelineToken }) }));
      const env = {
        ...SIGNALS.azure_pipelines,
        SYSTEM_OIDCREQUESTURI: `${endpoint.origin}/oidctoken`,
        SYSTEM_ACCESSTOKEN: "job-access-token",
      };
      expect(fp(await auto().getSubjectToken(context(env)))).toBe(fp(pipelineToken));
      expect(endpoint.requests.at(-1)?.query).toEqual({ "api-version": "7.1" });
      await auto({ serviceConnectionId: "sc-1" }).getSubjectToken(context(env));
      expect(endpoint.requests.at(-1)?.query).toEqual({ "api-version": "7.1", serviceConnectionId: "sc-1" });
    } finally {
      await endpoint.close();
    }
  });

  it("reads a Kubernetes projected token from the configured path", async () => {
    const token = await ci.mint({ style: "plain", aud: AUDIENCE });
    const path = join(dir, "oidc-token");
    await writeFile(path, token);
    expect(fp(await auto({ path }).getSubjectToken(context(SIGNALS.kubernetes)))).toBe(fp(token));
  });

  describe("a detected platform that is not set up gives that platform's fix", () => {
    it("GitHub without id-token permission", async () => {
      const err = (await rejectionOf(auto().getSubjectToken(context(SIGNALS.github_actions)))) as CiAuthError;
      expect(err.reason).toMatch(
        /^github_actions subject token: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set\. Add `permissions: id-token: write`/,
      );
    });

    it("GitLab without the id_tokens variable", async () => {
      const err = (await rejectionOf(auto().getSubjectToken(context(SIGNALS.gitlab)))) as CiAuthError;
      expect(err.reason).toBe(
        `gitlab subject token: the variable OPENCODE_ID_TOKEN is not set. Declare it in the job: \`id_tokens: { OPENCODE_ID_TOKEN: { aud: "${AUDIENCE}" } }\`, or set subjectTokenSource.var to the name you use.`,
      );
    });

    it("CircleCI without an OIDC token (and without the CLI for the audience)", async () => {
      const noAudience = (await rejectionOf(auto({ audience: undefined }).getSubjectToken(context(SIGNALS.circleci)))) as CiAuthError;
      expect(noAudience.reason).toMatch(
        /^circleci subject token: CIRCLE_OIDC_TOKEN_V2 is not set\. CircleCI sets it in every job of a project on CircleCI cloud or server 4\.4\+/,
      );
      const withAudience = (await rejectionOf(
        auto().getSubjectToken(context({ ...SIGNALS.circleci, PATH: "/nonexistent" })),
      )) as CiAuthError;
      expect(withAudience.reason).toMatch(/^circleci subject token: the circleci command is not on PATH/);
    });

    it("Bitbucket without `oidc: true`", async () => {
      const err = (await rejectionOf(auto().getSubjectToken(context(SIGNALS.bitbucket)))) as CiAuthError;
      expect(err.reason).toBe(
        "bitbucket subject token: BITBUCKET_STEP_OIDC_TOKEN is not set. Enable OIDC on the step that runs opencode in bitbucket-pipelines.yml: `oidc: true`, or `oidc: { audiences: [<your IdP's audience>] }` to choose the token's audience.",
      );
    });

    it("Azure Pipelines without SYSTEM_ACCESSTOKEN (with or without a service connection)", async () => {
      const err = (await rejectionOf(
        auto().getSubjectToken(context({ ...SIGNALS.azure_pipelines, SYSTEM_OIDCREQUESTURI: "https://dev.azure.example/x" })),
      )) as CiAuthError;
      expect(err.reason).toMatch(/^azure_pipelines subject token: SYSTEM_ACCESSTOKEN is not set\. /);
    });

    it("Azure Pipelines with a service connection but without SYSTEM_ACCESSTOKEN", async () => {
      const err = (await rejectionOf(
        auto({ serviceConnectionId: "sc-1" }).getSubjectToken(
          context({ ...SIGNALS.azure_pipelines, SYSTEM_OIDCREQUESTURI: "https://dev.azure.example/x" }),
        ),
      )) as CiAuthError;
      expect(err.reason).toMatch(
        /^azure_pipelines subject token: SYSTEM_ACCESSTOKEN is not set\. .*`env: \{ SYSTEM_ACCESSTOKEN: \$\(System\.AccessToken\) \}`/,
      );
    });

    it("Buildkite outside a job step (no agent variables)", async () => {
      const err = (await rejectionOf(auto().getSubjectToken(context(SIGNALS.buildkite)))) as CiAuthError;
      expect(err.reason).toMatch(/^buildkite subject token: BUILDKITE_JOB_ID and BUILDKITE_AGENT_ACCESS_TOKEN are not set\./);
    });

    it("Kubernetes without the projected volume", async () => {
      const err = (await rejectionOf(auto({ path: join(dir, "absent") }).getSubjectToken(context(SIGNALS.kubernetes)))) as CiAuthError;
      expect(err.reason).toMatch(/^kubernetes subject token: the projected service-account token .* does not exist\. Mount one/);
    });

    it("Google Cloud without an audience", async () => {
      const err = (await rejectionOf(auto({ audience: undefined }).getSubjectToken(context(SIGNALS.gcp_metadata)))) as CiAuthError;
      expect(err.reason).toBe(
        "auto subject token: this job runs on Google Cloud (GCE_METADATA_IP, GCE_METADATA_HOST or CLOUD_RUN_JOB), whose metadata server needs an audience: set subjectTokenSource.audience to the one your IdP expects.",
      );
    });
  });

  it("cacheIdentity is the detected source's, and undefined when nothing is detected", async () => {
    const env = { ...SIGNALS.bitbucket, BITBUCKET_REPO_UUID: "{r}", BITBUCKET_STEP_UUID: "{s}", BITBUCKET_STEP_OIDC_TOKEN: "x.y.z" };
    const identity = await auto().cacheIdentity(context(env));
    expect(identity).toBeDefined();
    expect(JSON.parse(identity ?? "[]")[0]).toBe("bitbucket");
    expect(await auto().cacheIdentity(context({}))).toBeUndefined();
  });
});
