/**
 * src/agent/: AgentSecrets and the two hooks built on it. Which variables are blanked in the agent's shell, the
 * opt-out, and what tool output loses. The same hooks run in the real opencode CLI in test/e2e/agent-shell.test.ts.
 */
import { describe, expect, it } from "vitest";

import { AgentSecrets } from "../../src/agent/agent-secrets.js";
import { REDACTED } from "../../src/agent/redact-secrets.js";
import { createShellEnvHook } from "../../src/agent/shell-env.js";
import { createMessagesTransformHook, createToolOutputHook } from "../../src/agent/tool-output.js";
import { oauth2Schema } from "../../src/config/schema.js";
import { createSubjectTokenSource } from "../../src/subject-token/sources.js";
import { captureLogger } from "../support/harness.js";

const EVERY_PLATFORM = ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "OPENCODE_ID_TOKEN", "SYSTEM_ACCESSTOKEN"];

function block(source: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return oauth2Schema.parse({ issuer: "https://auth.example.com/realms/acme", clientId: "c", subjectTokenSource: source, ...extra });
}

function setup(env: NodeJS.ProcessEnv, ...configs: ReturnType<typeof block>[]) {
  const secrets = new AgentSecrets(env, EVERY_PLATFORM);
  for (const config of configs) secrets.addProvider(config, createSubjectTokenSource(config.subjectTokenSource));
  const log = captureLogger("info");
  return { secrets, shellEnv: createShellEnvHook(secrets, log.logger), toolAfter: createToolOutputHook(secrets), log };
}

async function shell(hook: ReturnType<typeof setup>["shellEnv"]) {
  const output = { env: {} as Record<string, string> };
  await hook({ cwd: "/work" }, output);
  return output.env;
}

const GITHUB = {
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-0123456789",
  ACTIONS_ID_TOKEN_REQUEST_URL: "https://pipelines.example/_apis/token?api-version=2.0",
  HOME: "/home/runner",
};

describe("shell.env", () => {
  it("blanks every platform's credential variables that are set, and nothing else", async () => {
    const { shellEnv } = setup({ ...GITHUB, SYSTEM_ACCESSTOKEN: "azure-job-token-abcdef" }, block({ type: "github_actions" }));
    expect(await shell(shellEnv)).toEqual({ ACTIONS_ID_TOKEN_REQUEST_TOKEN: "", ACTIONS_ID_TOKEN_REQUEST_URL: "", SYSTEM_ACCESSTOKEN: "" });
  });

  it("adds the configured sources' own variables: a gitlab `var`, an env source's `var`", async () => {
    const env = { MY_ID_TOKEN: "gitlab-id-token-value", OTHER_JWT: "env-source-token-value", UNRELATED: "keep-me-please" };
    const { shellEnv } = setup(env, block({ type: "gitlab", var: "MY_ID_TOKEN" }), block({ type: "env", var: "OTHER_JWT" }));
    expect(await shell(shellEnv)).toEqual({ MY_ID_TOKEN: "", OTHER_JWT: "" });
  });

  it("adds the variables a url source's headers and a client secret were substituted from (found by value)", async () => {
    const env = { TOKEN_SERVICE_TOKEN: "service-credential-xyz", IDP_SECRET: "client-secret-value-123", SHORT: "abc" };
    const url = block({
      type: "url",
      url: "https://tokens.example.com/mint",
      headers: { Authorization: "Bearer service-credential-xyz", "X-Short": "abc" },
    });
    const confidential = block({ type: "github_actions" }, { clientSecret: "client-secret-value-123" });
    const { shellEnv } = setup(env, url, confidential);
    expect(await shell(shellEnv)).toEqual({ TOKEN_SERVICE_TOKEN: "", IDP_SECRET: "" });
  });

  it("OPENCODE_CI_AUTH_SHELL_ENV=inherit keeps them (the documented opt-out)", async () => {
    const { shellEnv } = setup({ ...GITHUB, OPENCODE_CI_AUTH_SHELL_ENV: "inherit" }, block({ type: "github_actions" }));
    expect(await shell(shellEnv)).toEqual({});
  });

  it("logs the names it blanked once, at info, never the values", async () => {
    const { shellEnv, log } = setup(GITHUB, block({ type: "github_actions" }));
    await shell(shellEnv);
    await shell(shellEnv);
    expect(log.lines.filter((l) => l["event"] === "shell_env_blanked")).toHaveLength(1);
    expect(log.text()).toContain("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    expect(log.text()).not.toContain(GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN);
  });
});

describe("tool.execute.after", () => {
  it("redacts credential values, config secrets and access tokens in the output, the title and the metadata", async () => {
    const { secrets, toolAfter } = setup(
      { ...GITHUB, OPENCODE_CI_AUTH_SHELL_ENV: "inherit" },
      block({ type: "github_actions" }, { clientSecret: "client-secret-value-123" }),
    );
    secrets.accessToken("access-token-from-the-idp-0001");
    const metadata = { output: `token=${GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN}`, nested: [{ line: "client-secret-value-123" }], exit: 0 };
    const output = {
      title: `curl ${GITHUB.ACTIONS_ID_TOKEN_REQUEST_URL}`,
      output: `ACTIONS_ID_TOKEN_REQUEST_TOKEN=${GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN}\nAuthorization: Bearer access-token-from-the-idp-0001\nHOME=/home/runner`,
      metadata,
    };
    await toolAfter({ tool: "bash" }, output);
    expect(output.output).toBe(`ACTIONS_ID_TOKEN_REQUEST_TOKEN=${REDACTED}\nAuthorization: Bearer ${REDACTED}\nHOME=/home/runner`);
    expect(output.title).toBe(`curl ${REDACTED}`);
    expect(output.metadata).toBe(metadata);
    expect(metadata).toEqual({ output: `token=${REDACTED}`, nested: [{ line: REDACTED }], exit: 0 });
  });

  it("redacts a JWT from the issuer of a subject token the plugin presented, even one it never saw", async () => {
    const { secrets, toolAfter } = setup({}, block({ type: "github_actions" }));
    secrets.subjectTokenIssuer("https://token.actions.githubusercontent.com");
    const payload = Buffer.from(JSON.stringify({ iss: "https://token.actions.githubusercontent.com", aud: "sts.amazonaws.com" })).toString(
      "base64url",
    );
    const minted = `eyJhbGciOiJSUzI1NiJ9.${payload}.c2lnbmF0dXJl`;
    const output = { title: "bash", output: `{"count":1,"value":"${minted}"}`, metadata: {} };
    await toolAfter({ tool: "bash" }, output);
    expect(output.output).toBe(`{"count":1,"value":"${REDACTED}"}`);
  });

  it("redacts an MCP tool's output, which has content parts and no `output` field", async () => {
    const { toolAfter } = setup(GITHUB, block({ type: "github_actions" }));
    const output = {
      content: [
        { type: "text", text: `token ${GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` },
        { type: "resource", resource: { text: GITHUB.ACTIONS_ID_TOKEN_REQUEST_URL } },
      ],
    };
    await toolAfter({ tool: "mcp_probe" }, output);
    expect(output).toEqual({
      content: [
        { type: "text", text: `token ${REDACTED}` },
        { type: "resource", resource: { text: REDACTED } },
      ],
    });
  });
});

describe("experimental.chat.messages.transform", () => {
  it("redacts every message part before a model request: what no tool hook saw (a `!` command, a template)", async () => {
    const { secrets } = setup(GITHUB, block({ type: "github_actions" }));
    const transform = createMessagesTransformHook(secrets);
    const messages = [
      {
        info: { role: "user" },
        parts: [{ type: "text", text: `here is env: ACTIONS_ID_TOKEN_REQUEST_TOKEN=${GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` }],
      },
      {
        info: { role: "assistant" },
        parts: [{ type: "tool", state: { output: `url ${GITHUB.ACTIONS_ID_TOKEN_REQUEST_URL}`, input: { command: "env" } } }],
      },
    ];
    await transform({}, { messages });
    expect(JSON.stringify(messages)).not.toContain(GITHUB.ACTIONS_ID_TOKEN_REQUEST_TOKEN);
    expect(JSON.stringify(messages)).not.toContain(GITHUB.ACTIONS_ID_TOKEN_REQUEST_URL);
    expect(messages[0]?.parts[0]).toEqual({ type: "text", text: `here is env: ACTIONS_ID_TOKEN_REQUEST_TOKEN=${REDACTED}` });
    expect(messages[1]?.parts[0]).toEqual({ type: "tool", state: { output: `url ${REDACTED}`, input: { command: "env" } } });
  });
});
