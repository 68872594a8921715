/**
 * The agent's shell, with the real opencode CLI (issue 9 §1). A mock model asks opencode's `bash` tool to run a
 * command (a streamed `tool_calls` answer); opencode runs it and sends its output back to the model in the next
 * request, as a `role: "tool"` message. That message is what a model provider (and its logs) gets, so it is what we
 * check, exactly as the model server received it.
 * - `shell.env` blanks the CI credential variables that the configured sources read, for every command the agent runs.
 * - `tool.execute.after` replaces credential and token values that a command finds by another route (opencode's own
 *   `/proc/<pid>/environ`, a file) with REDACTED, before the output reaches the model, the session or the job log.
 * - `OPENCODE_CI_AUTH_SHELL_ENV=inherit` turns the blanking off; the redaction stays.
 * Secret values are only ever compared, never printed: a failure names the variable and what its value looks like.
 */
import { realpathSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ModelRequestRecord } from "../support/model-server.js";
import { createSandbox, REPO_ROOT, type RunResult, type Sandbox } from "../support/opencode-cli.js";
import { githubActionsEnv, issueConfig, issueOAuth2Block, PROVIDER_ID } from "../support/issue-config.js";
import { startWorld, type World } from "../support/world.js";

/** The text that replaces a credential or token in a tool's output. */
const REDACTED = "[redacted by opencode-ci-auth]";
const FINAL_TEXT = "The command ran; nothing else to do.";
/** A run starts opencode, gets a token, runs a command and answers twice: give a busy 2-core machine room. */
const RUN_TIMEOUT_MS = 240_000;
const TEST_TIMEOUT_MS = 300_000;

let world: World;
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  world = await startWorld();
});
afterEach(() => {
  world.model.clearScripts();
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await world?.close();
});

interface AgentRun {
  result: RunResult;
  /** The content of the `role: "tool"` message that carried the command's output to the model. */
  toolResult: string;
  sandbox: Sandbox;
}

/**
 * `opencode run` in a fresh sandbox whose environment is `env`; the model asks `bash` to run `command` once, then
 * answers FINAL_TEXT. `beforeCall` runs just before the model sends the call (the plugin holds its tokens by then).
 */
async function runAgentCommand(
  config: unknown,
  env: NodeJS.ProcessEnv,
  command: string,
  beforeCall?: (request: ModelRequestRecord, sandbox: Sandbox) => Promise<void>,
): Promise<AgentRun> {
  const sandbox = await createSandbox(env);
  sandboxes.push(sandbox);
  await sandbox.writeConfig(config);
  const script = world.model.scriptToolCall({
    args: { command, description: "Run the command the test chose" },
    reply: FINAL_TEXT,
    ...(beforeCall ? { beforeCall: (request: ModelRequestRecord) => beforeCall(request, sandbox) } : {}),
  });
  const result = await sandbox.run(["run", "--model", `${PROVIDER_ID}/mock-model`, "Run the command"], { timeoutMs: RUN_TIMEOUT_MS });
  expect(result.code, scrub(result.stderr.slice(-2000))).toBe(0);
  expect(script.callId, "the model server sent its tool call").toBeDefined();
  expect(script.result, "opencode sent the command's output back to the model").toBeDefined();
  expect(result.stdout).toContain(FINAL_TEXT);
  return { result, toolResult: script.result ?? "", sandbox };
}

/** `text` with every secret the world handed out replaced: safe to print when a run fails. */
function scrub(text: string): string {
  const secrets = [world.ci.requestToken, world.ci.requestUrl, ...world.ci.tokensIssued, ...world.idp.issuedTokens];
  return secrets.filter((s) => s.length > 8).reduce((out, secret) => out.split(secret).join("<secret>"), text);
}

/** The value of the first `NAME=value` line in `text`; undefined when no line sets it. */
function lineValue(text: string, name: string): string | undefined {
  const prefix = `${name}=`;
  return text
    .split("\n")
    .find((line) => line.startsWith(prefix))
    ?.slice(prefix.length);
}

/** What a value looks like, without showing it: safe to print when an assertion fails. */
function shape(value: string | undefined): string {
  if (value === undefined) return "absent";
  if (value === "") return "blank";
  if (value === REDACTED) return REDACTED;
  return `${value.length} other characters`;
}

/** No secret value appears in any of the texts (the model's tool message, the job log). */
function expectNoValues(secrets: Record<string, string>, texts: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets)) {
    expect(value.length, `the test's ${name} has a value`).toBeGreaterThan(8);
    for (const [where, text] of Object.entries(texts)) expect(text.includes(value), `${name}'s value reached ${where}`).toBe(false);
  }
}

/** Every `NAME=` line of `env` output is blank or missing for each name. */
function expectBlank(toolResult: string, names: string[]): void {
  for (const name of names) expect(["blank", "absent"], `${name} in the agent's shell`).toContain(shape(lineValue(toolResult, name)));
}

function githubSecrets(): Record<string, string> {
  return { ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken, ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl };
}

/** A variable that no hook touches: proves the command ran in the shell and its output reached the model. */
function probe(): { name: string; value: string } {
  return { name: "AGENT_SHELL_PROBE", value: `visible-${Math.random().toString(36).slice(2)}` };
}

describe("the agent's shell with a github_actions source", () => {
  it(
    "`env` in the bash tool shows neither ACTIONS_ID_TOKEN_REQUEST_TOKEN nor ACTIONS_ID_TOKEN_REQUEST_URL, and the run succeeds",
    async () => {
      const marker = probe();
      const { result, toolResult } = await runAgentCommand(
        issueConfig(world),
        { ...githubActionsEnv(world), [marker.name]: marker.value },
        "env",
      );

      expectNoValues(githubSecrets(), { "the model": toolResult, "the job's stdout": result.stdout, "the job's stderr": result.stderr });
      expectBlank(toolResult, Object.keys(githubSecrets()));
      expect(lineValue(toolResult, marker.name), "the rest of the environment is still there").toBe(marker.value);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a credential read from opencode's own /proc/<pid>/environ, or a token read from a file, reaches the model as REDACTED",
    async () => {
      const opencodeBinary = realpathSync(join(REPO_ROOT, "node_modules", ".bin", "opencode"));
      const ciTokensBefore = world.ci.tokensIssued.length;
      let subjectTokens: string[] = [];
      let accessToken = "";
      // Plant the tokens the plugin holds by now: the subject token it fetched and the access token on this request.
      const plantTokens = async (request: ModelRequestRecord, sandbox: Sandbox): Promise<void> => {
        subjectTokens = world.ci.tokensIssued.slice(ciTokensBefore);
        accessToken = /^Bearer (\S+)$/.exec(request.authorization ?? "")?.[1] ?? "";
        const lines = [...subjectTokens.map((t) => `subject=${t}`), `access=${accessToken}`];
        await writeFile(join(sandbox.project, "tokens.txt"), `${lines.join("\n")}\n`);
      };
      // $PPID of the bash tool's shell is opencode itself; the shell prints which binary that is.
      const command = "echo \"parent=$(readlink /proc/$PPID/exe)\"; tr '\\0' '\\n' < /proc/$PPID/environ; cat tokens.txt";
      const { result, toolResult } = await runAgentCommand(issueConfig(world), githubActionsEnv(world), command, plantTokens);

      expect(subjectTokens.length, "the plugin fetched one subject token for this run").toBe(1);
      expect(lineValue(toolResult, "parent"), "the command read opencode's own environment").toBe(opencodeBinary);
      const planted = { "the subject token": subjectTokens[0] ?? "", "the access token": accessToken };
      expectNoValues(
        { ...githubSecrets(), ...planted },
        { "the model": toolResult, "the job's stdout": result.stdout, "the job's stderr": result.stderr },
      );
      for (const name of [...Object.keys(githubSecrets()), "subject", "access"]) {
        expect(shape(lineValue(toolResult, name)), `${name} in the tool's output`).toBe(REDACTED);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "with OPENCODE_CI_AUTH_SHELL_ENV=inherit, `env` shows the variables, and their values still reach the model as REDACTED",
    async () => {
      const { result, toolResult } = await runAgentCommand(
        issueConfig(world),
        { ...githubActionsEnv(world), OPENCODE_CI_AUTH_SHELL_ENV: "inherit" },
        "env",
      );

      expectNoValues(githubSecrets(), { "the model": toolResult, "the job's stdout": result.stdout, "the job's stderr": result.stderr });
      for (const name of Object.keys(githubSecrets())) {
        expect(shape(lineValue(toolResult, name)), `${name} in the inherited environment`).toBe(REDACTED);
      }
      expect(lineValue(toolResult, "OPENCODE_CI_AUTH_SHELL_ENV"), "the opt-out itself is visible").toBe("inherit");
    },
    TEST_TIMEOUT_MS,
  );
});

describe("the agent's shell with a gitlab source and an env source", () => {
  it(
    "blanks the gitlab source's `var` and the env source's `var`, for every configured provider",
    async () => {
      const [gitlabToken, envToken] = await Promise.all([
        world.ci.mint({ aud: world.idp.issuer, style: "gitlab", expiresIn: 3600 }),
        world.ci.mint({ aud: world.idp.issuer, expiresIn: 3600 }),
      ]);
      const gitlabConfig = issueConfig(world, {
        subjectTokenSource: { type: "gitlab", var: "MIAOU_ID_TOKEN", audience: world.idp.issuer },
      });
      const envProvider = {
        name: "Miaou via env",
        options: {
          baseURL: world.model.baseURL,
          oauth2: issueOAuth2Block(world, { subjectTokenSource: { type: "env", var: "MIAOU_SUBJECT_JWT", audience: world.idp.issuer } }),
        },
      };
      const config = { ...gitlabConfig, provider: { ...gitlabConfig.provider, "miaou-env": envProvider } };
      const marker = probe();
      const env = { GITLAB_CI: "true", MIAOU_ID_TOKEN: gitlabToken, MIAOU_SUBJECT_JWT: envToken, [marker.name]: marker.value };
      const { result, toolResult } = await runAgentCommand(config, env, "env");

      const secrets = { MIAOU_ID_TOKEN: gitlabToken, MIAOU_SUBJECT_JWT: envToken };
      expectNoValues(secrets, { "the model": toolResult, "the job's stdout": result.stdout, "the job's stderr": result.stderr });
      expectBlank(toolResult, Object.keys(secrets));
      expect(lineValue(toolResult, marker.name), "the rest of the environment is still there").toBe(marker.value);
    },
    TEST_TIMEOUT_MS,
  );
});
