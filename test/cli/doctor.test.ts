/**
 * `opencode-ci-auth doctor`, run as the built command (dist/cli/main.js) in a child process against the loopback
 * world: the fake CI issuer (GitHub-style token service, GitLab/env tokens minted on demand) and the real
 * oidc-provider IdP. Each ✓ and ✗ path, its exit code, --json and $GITHUB_STEP_SUMMARY.
 *
 * Each test has its own world and project (worlds start in milliseconds), so the tests run concurrently.
 * Every run goes through `doctor()`, which scans stdout, stderr and the step summary for every secret the world
 * handed out (CI tokens and their signatures, access tokens, the request token, client secrets) BEFORE any other
 * assertion, so no failing assertion can print one.
 *
 * Set OPENCODE_CI_AUTH_CAPTURE_DIR to keep the stdout of the runs quoted in docs/doctor.md.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { assertBuilt, createCliProject, markdownCells } from "../support/cli.js";
import type { CliProject, CliResult } from "../support/cli.js";
import { startProxiedIdp } from "../support/fault-proxy.js";
import { closedPort, expectNoLeak } from "../support/harness.js";
import type { Secret } from "../support/harness.js";
import { IDP_CLIENTS, JWT_BEARER, TOKEN_EXCHANGE } from "../support/idp.js";
import { startWorld } from "../support/world.js";
import type { World, WorldOptions } from "../support/world.js";

/** Everything one test needs: its own world (CI issuer, IdP, model server) and its own project, so tests run concurrently. */
interface Scene {
  world: World;
  project: CliProject;
  /** More secrets to scan for (a wrong client secret, another IdP's tokens). */
  secrets: Array<() => Secret[]>;
  /** Runs `opencode-ci-auth doctor …` in the project and checks that no secret reached any of its outputs. */
  doctor(args: string[], env?: NodeJS.ProcessEnv): Promise<DoctorRun>;
  /** The opencode.json with one provider `miaou`: the issue's oauth2 block pointed at the world (overrides replace fields). */
  config(oauth2?: Record<string, unknown>, issuer?: string): OpencodeJson;
  /** A GitHub Actions job with `permissions: id-token: write`, writing its step summary to the project's temp root. */
  githubJob(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

interface OpencodeJson {
  $schema: string;
  plugin: string[];
  provider: { miaou: { name: string; options: { baseURL: string; oauth2: Record<string, unknown> } } };
}

interface DoctorRun extends CliResult {
  /** The $GITHUB_STEP_SUMMARY file after the run ('' when not on GitHub Actions). */
  summary: string;
}

const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await assertBuilt();
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function worldSecrets(world: World): Secret[] {
  return [
    ...world.ci.tokensIssued.flatMap((value, i) => [
      { label: `CI token #${i}`, value },
      { label: `CI token #${i} signature`, value: value.split(".")[2] ?? "" },
    ]),
    ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", value: world.ci.requestToken },
    { label: "ci-post client secret", value: world.idp.secrets.post },
    { label: "ci-basic client secret", value: world.idp.secrets.basic },
  ];
}

async function scene(options: WorldOptions = {}): Promise<Scene> {
  const world = await startWorld(options);
  cleanups.push(() => world.close());
  const project = await createCliProject();
  cleanups.push(() => project.dispose());
  const secrets: Array<() => Secret[]> = [() => worldSecrets(world)];
  return {
    world,
    project,
    secrets,
    async doctor(args, env = {}) {
      const result = await project.run(["doctor", ...args], env);
      const summary = env.GITHUB_STEP_SUMMARY ? await readFile(env.GITHUB_STEP_SUMMARY, "utf8").catch(() => "") : "";
      const all = secrets.flatMap((s) => s());
      // At least the request token and the two client secrets, whatever the test minted.
      expect(all.length).toBeGreaterThanOrEqual(3);
      expectNoLeak([result.stdout, result.stderr, summary], all);
      return { ...result, summary };
    },
    config(oauth2 = {}, issuer = world.idp.issuer) {
      return {
        $schema: "https://opencode.ai/config.json",
        plugin: ["opencode-ci-auth"],
        provider: {
          miaou: {
            name: "Miaou",
            options: {
              baseURL: world.model.baseURL,
              oauth2: {
                issuer,
                clientId: IDP_CLIENTS.none,
                scopes: ["models.read"],
                authFlow: "jwt_bearer",
                subjectTokenSource: { type: "github_actions", audience: issuer },
                ...oauth2,
              },
            },
          },
        },
      };
    },
    githubJob(extra = {}) {
      return {
        GITHUB_ACTIONS: "true",
        GITHUB_REPOSITORY: "acme/app",
        GITHUB_REF: "refs/heads/main",
        GITHUB_EVENT_NAME: "push",
        GITHUB_RUN_ID: "300001",
        GITHUB_STEP_SUMMARY: project.path("step-summary.md"),
        ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
        ...extra,
      };
    },
  };
}

/** Keeps the stdout (and step summary) of a run quoted in docs/doctor.md, when OPENCODE_CI_AUTH_CAPTURE_DIR is set. */
async function capture(name: string, run: DoctorRun): Promise<void> {
  const dir = process.env.OPENCODE_CI_AUTH_CAPTURE_DIR;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.txt`), run.stdout);
  if (run.summary) await writeFile(join(dir, `${name}.summary.md`), run.summary);
}

/** The ✓/✗/!/- marks of the step lines, in order. */
const marks = (stdout: string) => [...stdout.matchAll(/^ {2}([✓✗!-]) /gm)].map((m) => m[1]);
const lines = (stdout: string) => stdout.split("\n");
const ciTokenRequests = (world: World) => world.ci.requests.filter((r) => r.path === "/_apis/token").length;

/** A job on branch feature-x, as the GitHub token service reports it. */
const FEATURE_BRANCH: WorldOptions = {
  ci: {
    defaultClaims: {
      ref: "refs/heads/feature-x",
      sub: "repo:acme/app:ref:refs/heads/feature-x",
      workflow_ref: "acme/app/.github/workflows/ci.yml@refs/heads/feature-x",
      job_workflow_ref: "acme/app/.github/workflows/ci.yml@refs/heads/feature-x",
    },
  },
};

/** A job of repository acme/other, which the IdP's policy does not allow. */
const OTHER_REPOSITORY: WorldOptions = {
  ci: {
    defaultClaims: {
      repository: "acme/other",
      sub: "repo:acme/other:ref:refs/heads/main",
      workflow_ref: "acme/other/.github/workflows/ci.yml@refs/heads/main",
      job_workflow_ref: "acme/other/.github/workflows/ci.yml@refs/heads/main",
    },
  },
};

const EXPECT_MAIN = { repository: "acme/*", ref: "refs/heads/main" };

describe.concurrent("doctor: all good", () => {
  it("exit 0, a ✓ per step: claims, lifetime left, audience ✓, expectClaims ✓, discovery, grant; a Markdown table in the step summary", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config({ expectClaims: EXPECT_MAIN }));
    await writeFile(project.path("step-summary.md"), "## earlier step\n\n");

    const run = await doctor([], githubJob());
    await capture("good", run);

    expect(run.code, run.stdout).toBe(0);
    expect(run.stderr).toBe("");
    const out = lines(run.stdout);
    expect(out.slice(0, 4)).toEqual([
      "opencode-ci-auth doctor",
      "",
      `config    ${join(project.dir, "opencode.json")} (project)`,
      "platform  GitHub Actions · repository acme/app · ref refs/heads/main · event push · run 300001",
    ]);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✓", "✓"]);
    expect(out).toContain("provider miaou");
    expect(out).toContain("  ✓ config valid: jwt_bearer with subject token from github_actions");
    expect(run.stdout).toMatch(/^ {2}✓ subject token from github_actions, [45]m \d\ds left$/m);
    // The non-secret claims, aligned, with the audience checked against the configured one.
    expect(out).toContain(`      iss                  ${world.ci.issuer}`);
    expect(out).toContain(`      aud                  ${world.idp.issuer}  ✓ configured audience`);
    expect(out).toContain("      sub                  repo:acme/app:ref:refs/heads/main");
    expect(out).toContain("      repository           acme/app");
    expect(out).toContain("      ref                  refs/heads/main");
    expect(out).toContain("      job_workflow_ref     acme/app/.github/workflows/ci.yml@refs/heads/main");
    expect(out).toContain("      event_name           push");
    // The ids an IdP should pin, as GitHub's immutable sub holds them; the name form of sub gets no note.
    expect(out).toContain("      repository_id        100001");
    expect(out).toContain("      repository_owner_id  200001");
    expect(run.stdout).not.toContain("note: ");
    expect(run.stdout).toContain(
      "  ✓ expectClaims: all 2 match\n      repository  acme/app         ✓ acme/*\n      ref         refs/heads/main  ✓ refs/heads/main\n",
    );
    expect(run.stdout).toContain(
      `  ✓ discovery reached\n      issuer          ${world.idp.issuer}\n      token endpoint  ${world.idp.tokenEndpoint}\n      grant types     advertises ${JWT_BEARER}\n`,
    );
    expect(run.stdout).toMatch(
      /^ {2}✓ grant succeeded: access token valid for (10m 00s|9m 5\ds)\n {6}expiry from {3}expires_in\n {6}scope {9}models\.read$/m,
    );
    expect(out).not.toContain("    →");
    expect(run.stdout.endsWith("\nresult: 1 provider(s) ready\n")).toBe(true);

    // Doctor really ran the grant, once.
    expect(world.idp.grants).toEqual([
      expect.objectContaining({ ok: true, clientId: IDP_CLIENTS.none, grantType: JWT_BEARER, repository: "acme/app" }),
    ]);

    // Appended to the step summary, after what was there.
    expect(run.summary.startsWith("## earlier step\n\n### opencode-ci-auth doctor: ✅ ready\n")).toBe(true);
    const summary = lines(run.summary);
    expect(summary).toContain("#### provider `miaou`");
    const rows = summary.filter((l) => l.startsWith("| ")).map(markdownCells);
    expect(rows.map((r) => r.slice(0, 2))).toEqual([
      ["step", ""],
      ["config", "✓"],
      ["subject-token", "✓"],
      ["expected-claims", "✓"],
      ["discovery", "✓"],
      ["grant", "✓"],
      ["claim", "value"],
      ["repository", "acme/app"],
      ["ref", "refs/heads/main"],
    ]);
    expect(rows.every((r) => r.length === 3)).toBe(true);
    expect(summary).toContain("| repository | acme/app | ✓ acme/* |");
  });

  it("--json: valid JSON with the same verdicts, claims and checks, and no token field", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config({ expectClaims: EXPECT_MAIN }));

    const run = await doctor(["--json"], githubJob());

    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as {
      ok: boolean;
      platform: { id: string; name: string; details: Record<string, string> };
      sources: Array<{ origin: string; path: string }>;
      providers: Array<{
        providerId: string;
        ok: boolean;
        sourceType: string;
        flow: string;
        steps: Array<{ step: string; status: string }>;
        claims: Record<string, unknown>;
        claimChecks: unknown[];
      }>;
    };
    expect(report.ok).toBe(true);
    expect(report.platform).toMatchObject({
      id: "github_actions",
      name: "GitHub Actions",
      details: { repository: "acme/app", ref: "refs/heads/main" },
    });
    expect(report.sources).toEqual([{ origin: "project", path: join(project.dir, "opencode.json") }]);
    const [p] = report.providers;
    expect(p).toMatchObject({ providerId: "miaou", ok: true, sourceType: "github_actions", flow: "jwt_bearer" });
    expect(p?.steps.map((s) => [s.step, s.status])).toEqual([
      ["config", "ok"],
      ["subject-token", "ok"],
      ["expected-claims", "ok"],
      ["discovery", "ok"],
      ["grant", "ok"],
    ]);
    expect(p?.claims).toMatchObject({ iss: world.ci.issuer, aud: world.idp.issuer, repository: "acme/app", ref: "refs/heads/main" });
    expect(p?.claimChecks).toEqual([
      { claim: "repository", actual: "acme/app", expected: ["acme/*"], ok: true },
      { claim: "ref", actual: "refs/heads/main", expected: ["refs/heads/main"], ok: true },
    ]);
    expect(run.stdout).not.toMatch(/access_token|"value"/);
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: true })]);
  });

  it("GitHub's immutable sub: ready, and a note under the claims says which sub the IdP must expect (no parsing of sub)", async () => {
    const { project, doctor, config, githubJob } = await scene({ ci: { githubSubject: "immutable" } });
    await project.writeConfig(config({ expectClaims: { repository_owner_id: "200001", repository_id: "100001" } }));

    const run = await doctor([], githubJob());
    await capture("immutable-subject", run);

    expect(run.code, run.stdout).toBe(0);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✓", "✓"]);
    const out = lines(run.stdout);
    expect(out).toContain("      sub                  repo:acme@200001/app@100001:ref:refs/heads/main");
    const claimsEnd = out.indexOf("      runner_environment   github-hosted");
    expect(claimsEnd).toBeGreaterThan(0);
    // Right under the claims, before the next step.
    expect(out[claimsEnd + 1]).toBe(
      "      note: sub is GitHub's immutable form, with the owner's and the repository's ids: an IdP that matches sub must expect repo:acme@200001/app@100001:ref:refs/heads/main, not repo:acme/app:ref:refs/heads/main; or pin repository_owner_id 200001 and repository_id 100001 instead (docs/idp-setup.md#githubs-two-forms-of-sub).",
    );
    expect(out[claimsEnd + 2]).toBe("  ✓ expectClaims: all 2 match");
  });

  it('an env source with no CI platform: platform "none", exit 0', async () => {
    const { world, project, doctor, config } = await scene();
    const token = await world.ci.mint({ aud: world.idp.issuer });
    await project.writeConfig(config({ subjectTokenSource: { type: "env", var: "JOB_OIDC_TOKEN", audience: world.idp.issuer } }));

    const run = await doctor([], { JOB_OIDC_TOKEN: token });

    expect(run.code).toBe(0);
    expect(lines(run.stdout)).toContain(
      "platform  no CI platform detected (looked for GITHUB_ACTIONS=true, GITLAB_CI=true, CIRCLECI=true, BUILDKITE=true, TF_BUILD=True or SYSTEM_OIDCREQUESTURI, BITBUCKET_BUILD_NUMBER, KUBERNETES_SERVICE_HOST, GCE_METADATA_IP, GCE_METADATA_HOST or CLOUD_RUN_JOB)",
    );
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✓"]);
    expect(run.stdout).toMatch(/^ {2}✓ subject token from env, [45]m \d\ds left$/m);
    expect(run.stdout).not.toContain("expectClaims");
  });

  it("an env source on GitHub Actions: ! on the config line with the source that fits, still exit 0", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    const token = await world.ci.mint({ aud: world.idp.issuer });
    await project.writeConfig(config({ subjectTokenSource: { type: "env", var: "JOB_OIDC_TOKEN" } }));

    const run = await doctor([], { ...githubJob(), JOB_OIDC_TOKEN: token });

    expect(run.code).toBe(0);
    expect(marks(run.stdout)).toEqual(["!", "✓", "✓", "✓"]);
    expect(run.stdout).toContain(
      '  ! config valid: jwt_bearer with subject token from env\n    → this job runs on GitHub Actions, but the provider reads its token from "env"; "github_actions" is the source for this platform\n',
    );
  });

  it("a confidential client: the secret comes from {env:VAR} and is never printed", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    await project.writeConfig(
      config({ clientId: IDP_CLIENTS.basic, clientSecret: "{env:CI_AUTH_SECRET}", tokenEndpointAuthMethod: "client_secret_basic" }),
    );

    const run = await doctor(["--json"], githubJob({ CI_AUTH_SECRET: world.idp.secrets.basic }));

    expect(run.code).toBe(0);
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: true, clientId: IDP_CLIENTS.basic })]);
  });
});

describe.concurrent("doctor: the subject token", () => {
  it("wrong branch against expectClaims: ✗ with the claim table, the grant not attempted, exit 1; --json says the same", async () => {
    const { world, project, doctor, config, githubJob } = await scene(FEATURE_BRANCH);
    await project.writeConfig(config({ expectClaims: EXPECT_MAIN }));

    const run = await doctor([], githubJob({ GITHUB_REF: "refs/heads/feature-x" }));
    await capture("wrong-branch", run);

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✗", "✓", "-"]);
    expect(run.stdout).toMatch(/^ {2}✓ subject token from github_actions, [45]m \d\ds left$/m);
    expect(lines(run.stdout)).toContain("      ref                  refs/heads/feature-x");
    expect(run.stdout).toContain(
      [
        "  ✗ expectClaims: 1 of 2 do not match",
        "      repository  acme/app              ✓ acme/*",
        "      ref         refs/heads/feature-x  ✗ expected refs/heads/main",
        "    → the claims marked ✗ do not match oauth2.expectClaims (ref): the plugin will not send this token",
      ].join("\n"),
    );
    expect(lines(run.stdout)).toContain("  - grant not attempted (an earlier step failed)");
    expect(run.stdout.endsWith("\nresult: 1 provider(s) failing\n")).toBe(true);
    expect(world.idp.grants).toEqual([]);

    expect(run.summary.startsWith("### opencode-ci-auth doctor: ❌ failing\n")).toBe(true);
    expect(lines(run.summary)).toContain("| ref | refs/heads/feature-x | ✗ refs/heads/main |");
    const stepRows = lines(run.summary)
      .filter((l) => /^\| (config|subject-token|expected-claims|discovery|grant) \|/.test(l))
      .map(markdownCells);
    expect(stepRows.map((r) => r.slice(0, 2))).toEqual([
      ["config", "✓"],
      ["subject-token", "✓"],
      ["expected-claims", "✗"],
      ["discovery", "✓"],
      ["grant", "-"],
    ]);
    expect(stepRows[2]?.[2]).toContain("**fix:** the claims marked ✗ do not match oauth2.expectClaims (ref)");

    // --json: the same verdicts as the text.
    const json = await doctor(["--json"], githubJob());
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as {
      ok: boolean;
      providers: Array<{ ok: boolean; steps: Array<{ status: string; fix?: string }>; claimChecks: Array<{ claim: string; ok: boolean }> }>;
    };
    const MARK: Record<string, string> = { ok: "✓", warn: "!", fail: "✗", skip: "-" };
    expect(report.ok).toBe(false);
    expect(report.providers[0]?.ok).toBe(false);
    expect(report.providers[0]?.steps.map((s) => MARK[s.status])).toEqual(marks(run.stdout));
    expect(report.providers[0]?.claimChecks.map((c) => [c.claim, c.ok])).toEqual([
      ["repository", true],
      ["ref", false],
    ]);
    expect(report.providers[0]?.steps[2]?.fix).toContain("do not match oauth2.expectClaims (ref)");
    expect(world.idp.grants).toEqual([]);
  });

  it("a list of expected patterns renders with | in the text and as ONE cell in the Markdown table", async () => {
    const { world, project, doctor, config, githubJob } = await scene(FEATURE_BRANCH);
    await project.writeConfig(config({ expectClaims: { ref: ["refs/heads/main", "refs/heads/release/*"] } }));

    const run = await doctor([], githubJob());

    expect(run.code).toBe(1);
    expect(lines(run.stdout)).toContain("      ref  refs/heads/feature-x  ✗ expected refs/heads/main | refs/heads/release/*");
    const row = lines(run.summary).find((l) => l.startsWith("| ref |"));
    expect(row).toBeDefined();
    expect(markdownCells(row as string)).toEqual(["ref", "refs/heads/feature-x", "✗ refs/heads/main \\| refs/heads/release/*"]);
    expect(world.idp.grants).toEqual([]);
  });

  it("missing permissions (no ACTIONS_ID_TOKEN_* variables): ✗ with `permissions: id-token: write`, exit 1", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config());

    const run = await doctor([], githubJob({ ACTIONS_ID_TOKEN_REQUEST_URL: undefined, ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined }));
    await capture("missing-permissions", run);

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✗", "✓", "-"]);
    expect(run.stdout).toContain(
      "  ✗ no subject token from github_actions\n    → github_actions subject token: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set. Add `permissions: id-token: write` to the workflow or job.",
    );
    expect(ciTokenRequests(world)).toBe(0);
    expect(world.idp.grants).toEqual([]);
  });

  it('wrong audience (GitLab): a token minted for another aud fails locally with "✗ expected <aud>", nothing is sent', async () => {
    const { world, project, doctor, config } = await scene();
    const token = await world.ci.mint({ style: "gitlab", aud: "https://other.example.com" });
    await project.writeConfig(config({ subjectTokenSource: { type: "gitlab", audience: world.idp.issuer } }));

    const run = await doctor([], {
      GITLAB_CI: "true",
      CI_PROJECT_PATH: "acme/app",
      CI_COMMIT_REF_NAME: "main",
      CI_PIPELINE_SOURCE: "push",
      OPENCODE_ID_TOKEN: token,
    });
    await capture("wrong-audience-gitlab", run);

    expect(run.code).toBe(1);
    expect(lines(run.stdout)).toContain("platform  GitLab CI · project acme/app · ref main · pipeline_source push");
    expect(marks(run.stdout)).toEqual(["✓", "✗", "✓", "-"]);
    const out = lines(run.stdout);
    expect(out).toContain("  ✗ subject token from gitlab fails the local checks");
    // Claim names are padded to the longest shown (runner_environment).
    expect(out).toContain(`      ${"aud".padEnd(18)}  https://other.example.com  ✗ expected ${world.idp.issuer}`);
    expect(out).toContain(`      ${"project_path".padEnd(18)}  acme/app`);
    expect(out).toContain(`      ${"namespace_path".padEnd(18)}  acme`);
    expect(run.stdout).toContain(
      `    → gitlab subject token: the token's audience ["https://other.example.com"] does not include the configured audience "${world.idp.issuer}".`,
    );
    expect(world.idp.grants).toEqual([]);
  });

  it("wrong audience (GitHub): the local check passes (the token has the configured aud) but the IdP refuses it", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    const wrong = "https://wrong-audience.example.com";
    await project.writeConfig(config({ subjectTokenSource: { type: "github_actions", audience: wrong } }));

    const run = await doctor([], githubJob());

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✗"]);
    expect(lines(run.stdout)).toContain(`      aud                  ${wrong}  ✓ configured audience`);
    expect(run.stdout).toContain(
      [
        "  ✗ grant refused by the IdP (HTTP 400)",
        "      error              invalid_grant",
        "      error_description  assertion audience mismatch",
        "    → likely cause: the IdP's trust policy does not accept this job's claims: compare the claims above with the policy's issuer, audience and subject/repository/ref conditions (add expectClaims to see the mismatch here).",
      ].join("\n"),
    );
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: false, error: "invalid_grant" })]);
  });
});

describe.concurrent("doctor: the IdP", () => {
  it("a repository the trust policy refuses: the IdP's words and the likely cause, exit 1", async () => {
    const { world, project, doctor, config, githubJob } = await scene(OTHER_REPOSITORY);
    await project.writeConfig(config());

    const run = await doctor([], githubJob({ GITHUB_REPOSITORY: "acme/other" }));
    await capture("refused", run);

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✗"]);
    expect(run.stdout).toContain(
      "  ✗ grant refused by the IdP (HTTP 400)\n      error              invalid_grant\n      error_description  repository acme/other is not allowed\n",
    );
    expect(run.stdout).toContain("    → likely cause: the IdP's trust policy does not accept this job's claims");
    expect(world.idp.grants).toEqual([expect.objectContaining({ ok: false, error: "invalid_grant", repository: "acme/other" })]);
  });

  it("a client that may not use the grant: unauthorized_client and the likely cause", async () => {
    const { project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config({ clientId: IDP_CLIENTS.noExchange, authFlow: "token_exchange" }));

    const run = await doctor([], githubJob());

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✗"]);
    expect(lines(run.stdout)).toContain(`      grant types     advertises ${TOKEN_EXCHANGE}`);
    expect(run.stdout).toContain(
      `      error              unauthorized_client\n      error_description  client no-exchange is not allowed to use grant type ${TOKEN_EXCHANGE}\n    → likely cause: the client "no-exchange" may not use token_exchange at this IdP: enable the grant for the client.\n`,
    );
  });

  /** A scene whose IdP sits behind a fault proxy that drops `grant` from grant_types_supported in every discovery document. */
  async function withoutGrantType(grant: string) {
    const s = await scene();
    const proxied = await startProxiedIdp({ ciIssuer: s.world.ci.issuer, ciJwksUrl: s.world.ci.jwksUrl });
    cleanups.push(() => proxied.close());
    s.secrets.push(() => [...proxied.idp.issuedTokens].map((value, i) => ({ label: `proxied IdP access token #${i}`, value })));
    const seen: string[][] = [];
    proxied.proxy.outage("/.well-known/openid-configuration", {
      kind: "rewrite",
      transform: (upstream) => {
        const doc = JSON.parse(upstream.body) as { grant_types_supported: string[] };
        seen.push(doc.grant_types_supported);
        return { body: JSON.stringify({ ...doc, grant_types_supported: doc.grant_types_supported.filter((g) => g !== grant) }) };
      },
    });
    return { ...s, proxied, seen };
  }

  it('an IdP that does not advertise the grant and refuses it: ! "does NOT advertise", then ✗ unauthorized_client with the likely cause', async () => {
    const { proxied, seen, project, doctor, config, githubJob } = await withoutGrantType(TOKEN_EXCHANGE);
    await project.writeConfig(config({ clientId: IDP_CLIENTS.noExchange, authFlow: "token_exchange" }, proxied.idp.issuer));

    const run = await doctor([], githubJob());
    await capture("grant-not-advertised", run);

    expect(run.code).toBe(1);
    // The real document listed it; the proxy took it out.
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((list) => list.includes(TOKEN_EXCHANGE))).toBe(true);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "!", "✗"]);
    expect(run.stdout).toContain(
      [
        "  ! discovery reached",
        `      issuer          ${proxied.idp.issuer}`,
        `      token endpoint  ${proxied.idp.tokenEndpoint}`,
        `      grant types     does NOT advertise ${TOKEN_EXCHANGE}`,
        "    → enable the token_exchange grant at the IdP (it lists ",
      ].join("\n"),
    );
    expect(run.stdout).toContain("      error              unauthorized_client\n");
    expect(run.stdout).toContain(
      '    → likely cause: the client "no-exchange" may not use token_exchange at this IdP (and the IdP does not advertise the grant): enable the grant for the client.\n',
    );
    expect(proxied.idp.grants).toEqual([expect.objectContaining({ ok: false, error: "unauthorized_client", grantType: TOKEN_EXCHANGE })]);
  });

  it("an IdP that does not advertise the grant but lets the client use it: ! on discovery only, exit 0", async () => {
    const { proxied, project, doctor, config, githubJob } = await withoutGrantType(JWT_BEARER);
    await project.writeConfig(config({}, proxied.idp.issuer));

    const run = await doctor([], githubJob());

    expect(run.code).toBe(0);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "!", "✓"]);
    expect(lines(run.stdout)).toContain(`      grant types     does NOT advertise ${JWT_BEARER}`);
    expect(run.stdout.endsWith("\nresult: 1 provider(s) ready\n")).toBe(true);
    expect(proxied.idp.grants).toEqual([expect.objectContaining({ ok: true, grantType: JWT_BEARER })]);
  });

  it("an unreachable IdP: ✗ discovery with the fix, the grant not attempted, exit 1", async () => {
    const { project, doctor, config, githubJob } = await scene();
    const issuer = `http://127.0.0.1:${await closedPort()}`;
    await project.writeConfig(config({}, issuer));

    const run = await doctor([], githubJob());
    await capture("unreachable", run);

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✗", "-"]);
    expect(run.stdout).toContain(`  ✗ discovery failed\n    → discovery at ${issuer}/ did not succeed: could not reach it (`);
    expect(run.stdout).toContain(
      "). Check the issuer URL and that the job can reach the IdP.\n  - grant not attempted (an earlier step failed)\n",
    );
  });

  it("a wrong client secret: invalid_client, and neither secret is printed", async () => {
    const { world, project, doctor, config, githubJob, secrets } = await scene();
    const wrong = `wrong-${world.idp.secrets.post.slice(0, 8)}-secret-value`;
    secrets.push(() => [{ label: "the wrong client secret", value: wrong }]);
    await project.writeConfig(config({ clientId: IDP_CLIENTS.post, clientSecret: "{env:CI_AUTH_SECRET}" }));

    const run = await doctor([], githubJob({ CI_AUTH_SECRET: wrong }));

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✗"]);
    expect(lines(run.stdout)).toContain("      error              invalid_client");
    expect(run.stdout).toContain(
      "    → likely cause: Client authentication failed: check clientId, clientSecret and tokenEndpointAuthMethod",
    );
  });
});

describe.concurrent("doctor: the config", () => {
  it("an invalid oauth2 block: ✗ config invalid listing every field, nothing else tried, exit 1", async () => {
    const { world, project, doctor, config, githubJob } = await scene();
    await project.writeConfig(
      config({ issuer: "http://idp.example.com", authFlow: "magic", clientId: "", subjectTokenSource: { type: "github_actions" } }),
    );

    const run = await doctor([], githubJob());
    await capture("config-invalid", run);

    expect(run.code).toBe(1);
    expect(marks(run.stdout)).toEqual(["✗"]);
    const out = lines(run.stdout);
    const at = out.indexOf("  ✗ config invalid");
    expect(at).toBeGreaterThan(0);
    expect(out.slice(at + 1, at + 5).sort()).toEqual(
      [
        "      oauth2.issuer: http://idp.example.com is not https (plain http is only allowed to loopback addresses, for local tests); a token must not travel in clear text",
        "      oauth2.clientId: clientId must not be empty (if it comes from {env:VAR}, check that VAR is set in the job)",
        '      oauth2.authFlow: authFlow must be "jwt_bearer", "token_exchange" or "client_credentials"',
        "    → correct the fields listed (docs/configuration.md)",
      ].sort(),
    );
    expect(ciTokenRequests(world)).toBe(0);
  });

  it("a broken config file is listed with its error and skipped; the others still count", async () => {
    const { project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config());
    await mkdir(join(project.dir, ".opencode"));
    const broken = await project.writeConfig('{ "provider": { ', ".opencode/opencode.json");

    const run = await doctor([], githubJob());

    expect(run.code).toBe(0);
    expect(lines(run.stdout).slice(2, 4)).toEqual([
      `config    ${join(project.dir, "opencode.json")} (project)`,
      `          ${broken} (.opencode)  ✗ CloseBraceExpected at line 1`,
    ]);
  });

  it("no config at all: ✗ with where it looked, exit 1", async () => {
    const { doctor, githubJob } = await scene();
    const run = await doctor([], githubJob());
    expect(run.code).toBe(1);
    expect(lines(run.stdout)).toContain("config    (none found)");
    expect(run.stdout).toContain(
      "✗ no opencode config found (looked for OPENCODE_CONFIG, opencode.json(c) from the cwd up, OPENCODE_CONFIG_DIR and the global config)",
    );
    expect(run.stdout.endsWith("\nresult: nothing checked (see above)\n")).toBe(true);
  });

  it("--provider: only that provider; an unknown one exits 1 naming the providers that have oauth2", async () => {
    const { project, doctor, config, githubJob } = await scene();
    const base = config();
    const miaou = base.provider.miaou;
    await project.writeConfig({
      ...base,
      provider: {
        miaou,
        second: { options: { baseURL: miaou.options.baseURL, oauth2: { ...miaou.options.oauth2, scopes: ["openid"] } } },
        plain: { options: { apiKey: "not-ours" } },
      },
    });

    const one = await doctor(["--provider", "second"], githubJob());
    expect(one.code).toBe(0);
    expect(lines(one.stdout).filter((l) => l.startsWith("provider "))).toEqual(["provider second"]);
    expect(one.stdout).toContain("      scope         openid\n");

    const unknown = await doctor(["-p", "nope"], githubJob());
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain('✗ provider "nope" has no options.oauth2 in this config (providers with oauth2: miaou, second)');
    expect(unknown.stdout).not.toContain("provider miaou");
  });

  it("--config PATH reads only that file; a missing one is a usage error (exit 2)", async () => {
    const { project, doctor, config, githubJob } = await scene();
    await project.writeConfig({ provider: { broken: { options: { oauth2: { clientId: "x" } } } } });
    const only = await project.writeConfig(config(), "ci.jsonc");

    const run = await doctor(["--config", "ci.jsonc"], githubJob());
    expect(run.code).toBe(0);
    expect(lines(run.stdout)[2]).toBe(`config    ${only} (--config)`);
    expect(run.stdout).not.toContain("provider broken");

    const missing = await doctor(["-c", "missing.json"], githubJob());
    expect(missing.code).toBe(2);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toBe(
      `opencode-ci-auth: --config: cannot read ${join(project.dir, "missing.json")} (ENOENT)\nRun 'opencode-ci-auth --help' for usage.\n`,
    );
  });

  it("an unusable private_key_jwt key file is named as a configuration problem, not as a failed discovery", async () => {
    const { project, doctor, config, githubJob } = await scene();
    const keyPath = join(project.dir, "no-such-key.pem");
    await project.writeConfig(
      config({ clientId: IDP_CLIENTS.privateKeyJwt, tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: keyPath }),
    );
    const run = await doctor([], githubJob());
    await capture("key-file", run);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("✗ grant client not built (configuration)");
    expect(run.stdout).toContain(`→ oauth2.privateKeyPath: cannot read ${keyPath} (ENOENT).`);
    expect(run.stdout).not.toContain("discovery failed");
  });

  it("--config naming a file that does not parse is a failed check (exit 1), not a usage error", async () => {
    const { project, doctor, githubJob } = await scene();
    await writeFile(join(project.dir, "broken.json"), '{ "provider": { ,, }');
    const run = await doctor(["--config", "broken.json"], githubJob());
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/^opencode-ci-auth: --config: .*broken\.json is not a valid opencode config \(\w+ at line 1\)\n$/);
  });
});

describe.concurrent("doctor: other platforms", () => {
  it("Bitbucket Pipelines: the platform line, and the claims a Bitbucket trust policy checks", async () => {
    const { world, project, doctor, config } = await scene();
    const token = await world.ci.mint({
      style: "plain",
      aud: world.idp.issuer,
      claims: { repository: "acme/app", workspaceUuid: "{ws-1}", repositoryUuid: "{repo-1}", branchName: "main" },
    });
    await project.writeConfig(config({ subjectTokenSource: { type: "bitbucket", audience: world.idp.issuer } }));

    const run = await doctor([], {
      CI: "true",
      BITBUCKET_BUILD_NUMBER: "42",
      BITBUCKET_REPO_FULL_NAME: "acme/app",
      BITBUCKET_BRANCH: "main",
      BITBUCKET_STEP_OIDC_TOKEN: token,
    });

    expect(run.code).toBe(0);
    const out = lines(run.stdout);
    expect(out).toContain("platform  Bitbucket Pipelines · repository acme/app · branch main · build 42");
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✓"]);
    expect(out).toContain(`      ${"repositoryUuid".padEnd(14)}  {repo-1}`);
    expect(out).toContain(`      ${"branchName".padEnd(14)}  main`);
    expect(out).toContain(`      ${"workspaceUuid".padEnd(14)}  {ws-1}`);
  });

  it("Bitbucket without `oidc: true`: ✗ with the fix", async () => {
    const { project, doctor, config } = await scene();
    await project.writeConfig(config({ subjectTokenSource: { type: "bitbucket" } }));
    const run = await doctor([], { CI: "true", BITBUCKET_BUILD_NUMBER: "42" });
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      "  ✗ no subject token from bitbucket\n    → bitbucket subject token: BITBUCKET_STEP_OIDC_TOKEN is not set. Enable OIDC on the step that runs opencode in bitbucket-pipelines.yml: `oidc: true`, or `oidc: { audiences: [<your IdP's audience>] }` to choose the token's audience.\n",
    );
  });

  it("auto on GitLab: names the source it picked, and does not warn about the platform", async () => {
    const { world, project, doctor, config } = await scene();
    const token = await world.ci.mint({ style: "gitlab", aud: world.idp.issuer });
    await project.writeConfig(config({ subjectTokenSource: { type: "auto", audience: world.idp.issuer } }));

    const run = await doctor([], { GITLAB_CI: "true", CI_PROJECT_PATH: "acme/app", OPENCODE_ID_TOKEN: token });

    expect(run.code).toBe(0);
    expect(marks(run.stdout)).toEqual(["✓", "✓", "✓", "✓"]);
    expect(run.stdout).toContain("  ✓ config valid: jwt_bearer with subject token from auto\n");
    expect(run.stdout).toMatch(/^ {2}✓ subject token from auto \(gitlab\), \d+m \d\ds left$/m);
  });

  it("auto with no platform: ✗ with what was looked for", async () => {
    const { project, doctor, config } = await scene();
    await project.writeConfig(config({ subjectTokenSource: { type: "auto" } }));
    const run = await doctor([], {});
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      "  ✗ no subject token from auto\n    → auto subject token: no supported platform detected (looked for GITHUB_ACTIONS=true, GITLAB_CI=true, CIRCLECI=true,",
    );
  });

  it("Kubernetes: the namespace and service account of the projected token", async () => {
    const { world, project, doctor, config } = await scene();
    const token = await world.ci.mint({
      style: "plain",
      aud: world.idp.issuer,
      claims: {
        repository: "acme/app",
        sub: "system:serviceaccount:ci:runner",
        "kubernetes.io": { namespace: "ci", serviceaccount: { name: "runner", uid: "u-1" }, pod: { name: "p", uid: "u-2" } },
      },
    });
    const path = project.path("oidc-token");
    await writeFile(path, token);
    await project.writeConfig(config({ subjectTokenSource: { type: "kubernetes", path, audience: world.idp.issuer } }));

    const run = await doctor([], { KUBERNETES_SERVICE_HOST: "10.0.0.1", HOSTNAME: "runner-abc" });

    expect(run.code).toBe(0);
    const out = lines(run.stdout);
    expect(out).toContain("platform  Kubernetes · pod runner-abc");
    expect(out).toContain(`      ${"kubernetes.io/namespace".padEnd(28)}  ci`);
    expect(out).toContain(`      ${"kubernetes.io/serviceaccount".padEnd(28)}  runner`);
    expect(run.stdout).not.toContain("u-2");
  });
});

describe.concurrent("doctor: where tokens may go, and the agent's shell", () => {
  it("shows the allow-lists the job set, and fails a provider outside them with the plugin's own message", async () => {
    const { project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config());
    const run = await doctor(
      [],
      githubJob({ OPENCODE_CI_AUTH_ALLOWED_ISSUERS: "https://auth.example.com/realms/acme,https://login.example.com" }),
    );
    expect(run.code).toBe(1);
    expect(lines(run.stdout)).toContain(
      "allowed   OPENCODE_CI_AUTH_ALLOWED_ISSUERS=https://auth.example.com/realms/acme,https://login.example.com",
    );
    expect(run.stdout).toContain("  ✗ config invalid\n");
    expect(run.stdout).toContain(
      "is not in OPENCODE_CI_AUTH_ALLOWED_ISSUERS (https://auth.example.com/realms/acme, https://login.example.com), which this job sets",
    );
  });

  it("says when no list is set", async () => {
    const { project, doctor, config } = await scene();
    await project.writeConfig(config());
    const run = await doctor([], {});
    expect(lines(run.stdout)).toContain("allowed   no OPENCODE_CI_AUTH_ALLOWED_* list set: the config alone decides where tokens go");
  });

  it("a provider without options.baseURL fails, as the plugin would refuse it", async () => {
    const { project, doctor, config, githubJob } = await scene();
    const base = config();
    await project.writeConfig({
      ...base,
      provider: { miaou: { ...base.provider.miaou, options: { oauth2: base.provider.miaou.options.oauth2 } } },
    });
    const run = await doctor([], githubJob());
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("      options.baseURL: is required: the access token is sent to it.");
  });

  it("warns, on one line, when the agent's bash tool is on in a job that can mint tokens; not when it is off", async () => {
    const { project, doctor, config, githubJob } = await scene();
    await project.writeConfig(config());
    const on = await doctor([], githubJob());
    expect(on.code).toBe(0);
    const warning = lines(on.stdout).filter((l) => l.startsWith("! "));
    expect(warning).toEqual([
      "! the agent's bash tool is on in a job that can mint tokens (ACTIONS_ID_TOKEN_REQUEST_TOKEN, ACTIONS_ID_TOKEN_REQUEST_URL set): the plugin blanks them in the agent's shell and redacts them from tool output, but a command can still read them from another process's environment. Run no untrusted code here, and pin job_workflow_ref in the IdP's policy (docs/security.md#the-agents-shell-and-tool-output).",
    ]);
    const inherit = await doctor([], githubJob({ OPENCODE_CI_AUTH_SHELL_ENV: "inherit" }));
    expect(inherit.stdout).toContain("OPENCODE_CI_AUTH_SHELL_ENV=inherit keeps them in the agent's shell");
    await project.writeConfig({ ...config(), permission: { bash: "deny" } });
    const off = await doctor([], githubJob());
    expect(lines(off.stdout).filter((l) => l.startsWith("! "))).toEqual([]);
  });
});
