/**
 * Nothing secret leaks, proven on real output: the real opencode CLI at its most verbose (--log-level DEBUG,
 * --print-logs, plugin at trace), through the happy path and every failure path a user can meet (transient faults
 * and retries, IdP garbage, a refusal, a provider that keeps answering 401, a confidential client, private_key_jwt).
 * stdout, stderr and opencode's log file are scanned for every secret the loopback world ever handed out.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { startFaultProxy, startProxiedIdp, type FaultProxy, type ProxiedIdp } from "../support/fault-proxy.js";
import { IDP_CLIENTS } from "../support/idp.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { createSandbox, type Sandbox } from "../support/opencode-cli.js";

// Each test runs the real opencode CLI once or more: a deadline sized for a loaded 2-core runner, not a wait.
vi.setConfig({ testTimeout: 300_000 });

let ci: CiIssuer;
let ciProxy: FaultProxy;
let proxied: ProxiedIdp;
let model: ModelServer;
const sandboxes: Sandbox[] = [];
/** Everything printed by every run, scanned at the end as well as per run. */
const outputs: string[] = [];

beforeAll(async () => {
  ci = await startCiIssuer();
  ciProxy = await startFaultProxy(ci.issuer);
  proxied = await startProxiedIdp({ ciIssuer: ci.issuer, ciJwksUrl: ci.jwksUrl });
  model = await startModelServer({ validateToken: (t) => proxied.idp.isValidAccessToken(t) });
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.dispose()));
  await model?.close();
  await proxied?.close();
  await ciProxy?.close();
  await ci?.close();
});

function config(oauth2: Record<string, unknown> = {}) {
  return {
    plugin: ["opencode-ci-auth"],
    provider: {
      miaou: {
        name: "Miaou",
        options: {
          baseURL: model.baseURL,
          oauth2: {
            issuer: proxied.idp.issuer,
            clientId: IDP_CLIENTS.none,
            scopes: ["openid"],
            subjectTokenSource: { type: "github_actions", audience: proxied.idp.issuer },
            ...oauth2,
          },
        },
      },
    },
  };
}

async function run(cfg: unknown, env: NodeJS.ProcessEnv = {}) {
  const sandbox = await createSandbox({
    ACTIONS_ID_TOKEN_REQUEST_URL: `${ciProxy.url}/_apis/token?api-version=2.0`,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken,
    OPENCODE_CI_AUTH_LOG_LEVEL: "trace",
    ...env,
  });
  sandboxes.push(sandbox);
  await sandbox.writeConfig(cfg);
  const result = await sandbox.run(["run", "--print-logs", "--log-level", "DEBUG", "--model", "miaou/mock-model", "Say hello"]);
  const logs = await sandbox.readLogs();
  outputs.push(result.stdout, result.stderr, logs);
  return { result, logs, all: [result.stdout, result.stderr, logs] };
}

/** Every secret: CI tokens (and their signatures alone), access tokens, the request token, client secrets, the private key. */
function secrets(): Array<{ label: string; value: string }> {
  const keyLines = proxied.idp.privateKeyPem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
  return [
    ...ci.tokensIssued.map((value, i) => ({ label: `CI token #${i}`, value })),
    ...ci.tokensIssued
      .map((t, i) => ({ label: `CI token signature #${i}`, value: t.split(".")[2] ?? "" }))
      .filter((s) => s.value.length > 10),
    ...[...proxied.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
    { label: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", value: ci.requestToken },
    { label: "client secret (post)", value: proxied.idp.secrets.post },
    { label: "client secret (basic)", value: proxied.idp.secrets.basic },
    ...keyLines.map((value, i) => ({ label: `private key line #${i}`, value })),
  ];
}

function expectClean(texts: string[]): void {
  const found = secrets().filter((s) => texts.some((t) => t.includes(s.value)));
  // Labels only: a failing assertion must not print the secret it found.
  expect(found.map((s) => s.label)).toEqual([]);
}

describe("no secret in opencode's output, at the most verbose level", () => {
  it("through a transient IdP fault and its retry, with a confidential client (client_secret_basic from {env:})", async () => {
    proxied.proxy.inject("/token", { kind: "status", status: 503, body: "<html>maintenance</html>" });
    const { result, all } = await run(
      config({ clientId: IDP_CLIENTS.basic, clientSecret: "{env:MIAOU_SECRET}", tokenEndpointAuthMethod: "client_secret_basic" }),
      {
        MIAOU_SECRET: proxied.idp.secrets.basic,
      },
    );
    expect(result.code, result.stderr.slice(-1500)).toBe(0);
    expect(result.stderr).toContain('"event":"retrying"');
    expect(result.stderr).toContain('"event":"grant_succeeded"');
    expectClean(all);
  });

  it("with private_key_jwt (the key file is read, its content never printed)", async () => {
    const sandboxKey = join(sandboxes[0]?.root ?? "/tmp", "client-key.pem");
    await writeFile(sandboxKey, proxied.idp.privateKeyPem, { mode: 0o600 });
    const { result, all } = await run(
      config({
        clientId: IDP_CLIENTS.privateKeyJwt,
        tokenEndpointAuthMethod: "private_key_jwt",
        privateKeyPath: sandboxKey,
        privateKeyId: proxied.idp.privateKeyKid,
      }),
    );
    expect(result.code, result.stderr.slice(-1500)).toBe(0);
    expectClean(all);
  });

  it("when the IdP answers garbage holding a real access token", async () => {
    proxied.proxy.outage("/token", {
      kind: "rewrite",
      transform: (a) => ({
        status: 200,
        headers: { ...a.headers, "content-type": "application/json" },
        body: JSON.stringify({ ...JSON.parse(a.body), token_type: "mac" }),
      }),
    });
    try {
      const { result, all } = await run(config());
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("token_type this plugin cannot send");
      expectClean(all);
    } finally {
      proxied.proxy.outage("/token", undefined);
    }
  });

  it("when the IdP refuses, and when the provider keeps answering 401", async () => {
    ci.claims = { repository: "evil/fork" };
    try {
      const refused = await run(config());
      expect(refused.result.code).not.toBe(0);
      expect(refused.result.stderr).toContain("repository evil/fork is not allowed");
      expectClean(refused.all);
    } finally {
      ci.claims = {};
    }
    model.failNext401(1000);
    try {
      const unauthorized = await run(config());
      expect(unauthorized.result.code).not.toBe(0);
      expect(unauthorized.result.stderr).toContain("to a freshly issued access token, after one refresh and one retry");
      expectClean(unauthorized.all);
    } finally {
      model.failNext401(0);
    }
  });

  it("and across every run above together, with all the secrets handed out by then", () => {
    expect(outputs.length).toBeGreaterThanOrEqual(15);
    expect(secrets().length).toBeGreaterThan(10);
    expectClean(outputs);
  });
});
