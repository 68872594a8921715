/**
 * The new subject-token sources through the whole chain (TokenProvider → local checks → the real oidc-provider
 * IdP → an access token the model server accepts), on loopback:
 *  - `url`: a fake token endpoint that serves tokens minted by the world's CI issuer, one per request;
 *  - `auto`: GitHub Actions and GitLab picked from the environment alone;
 *  - `buildkite`: a fake `buildkite-agent` on PATH;
 *  - `kubernetes`: a projected-token file rotated between grants;
 *  - and `auto` (on Buildkite) through the plugin's own config hook, up to the model server.
 * The sources run twice, against `src/` and against the packed package's `/lib` (UNDER_TEST), so the bundle's
 * subprocess (`buildkite-agent`), HTTP and file sources are held to the same behaviour.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { Config } from "@opencode-ai/plugin";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import type { OAuth2Input } from "../src/config/schema.js";
import { createConfigHook } from "../src/hooks/config.js";
import { ProviderRegistry } from "../src/hooks/registry.js";
import { pathWith, writeFakeCli, type FakeCli } from "./support/fake-cli.js";
import { captureLogger, expectNoLeak, fp, rejectionOf } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startTokenEndpoint, type TokenEndpoint } from "./support/token-endpoint.js";
import { UNDER_TEST, captureWith, parseWith } from "./support/under-test.js";
import { startWorld, type World } from "./support/world.js";

let world: World;
let endpoint: TokenEndpoint;
let dir: string;
let agent: FakeCli;

beforeAll(async () => {
  world = await startWorld({ ci: { lifetimeSeconds: 3600 } });
  endpoint = await startTokenEndpoint();
  dir = await mkdtemp(join(tmpdir(), "provider-sources-"));
  agent = await writeFakeCli(dir, "buildkite-agent");
});

afterAll(async () => {
  await endpoint?.close();
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  // A fresh token for every request, with the audience the IdP expects.
  endpoint.answer(async () => ({
    status: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ data: { token: await world.ci.mint({ aud: world.idp.issuer }) } }),
  }));
});

async function expectAccepted(token: { value: string }): Promise<void> {
  expect(world.idp.issuedTokens.has(token.value)).toBe(true);
  expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
}

const secrets = () => [
  ...world.ci.tokensIssued.map((value, i) => ({ label: `CI token #${i}`, value })),
  ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
];

describe.each(UNDER_TEST)("$name", ({ lib }) => {
  function provider(subjectTokenSource: OAuth2Input["subjectTokenSource"], env: NodeJS.ProcessEnv = {}) {
    const log = captureWith(lib, "trace");
    const config = parseWith(lib, {
      issuer: world.idp.issuer,
      clientId: IDP_CLIENTS.none,
      scopes: ["models.read"],
      subjectTokenSource,
      retry: { maxAttempts: 1 },
    });
    return { provider: lib.createTokenProvider("miaou", config, { env, logger: log.logger }), log };
  }

  describe("url source through the real chain", () => {
    it("gets an access token from a subject token served by a URL (json field), a fresh one for every grant", async () => {
      const { provider: p, log } = provider(
        {
          type: "url",
          url: `${endpoint.origin}/ci-token`,
          format: "json",
          field: "data.token",
          headers: { Authorization: "Bearer svc-credential" },
          audience: world.idp.issuer,
        },
        {},
      );
      const before = endpoint.requests.length;
      const first = await p.getToken();
      await expectAccepted(first);
      expect(world.idp.grants.at(-1)).toMatchObject({ ok: true, repository: "acme/app" });
      p.invalidate(first.value);
      const second = await p.getToken();
      await expectAccepted(second);
      expect(fp(second.value)).not.toBe(fp(first.value));
      expect(endpoint.requests.length - before).toBe(2);
      expect(endpoint.requests.at(-1)?.headers.authorization).toBe("Bearer svc-credential");
      expectNoLeak([log.text()], [...secrets(), { label: "url header credential", value: "svc-credential" }]);
    });

    it("a token for another audience fails the local check and never reaches the IdP", async () => {
      endpoint.answer(async () => ({ status: 200, body: await world.ci.mint({ aud: "https://other.example.com" }) }));
      const grants = world.idp.grants.length;
      const { provider: p } = provider({ type: "url", url: `${endpoint.origin}/ci-token`, audience: world.idp.issuer });
      const err = await rejectionOf(p.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenInvalidError);
      expect(err.message).toMatch(
        /^opencode-ci-auth: provider "miaou": url subject token: the token's audience \["https:\/\/other\.example\.com"\] does not include/,
      );
      expect(world.idp.grants.length).toBe(grants);
    });
  });

  describe("auto source through the real chain", () => {
    it("picks GitHub Actions from GITHUB_ACTIONS and asks its token service for the audience", async () => {
      const env = {
        GITHUB_ACTIONS: "true",
        ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
      };
      const { provider: p, log } = provider({ type: "auto", audience: world.idp.issuer }, env);
      await expectAccepted(await p.getToken());
      expect(world.ci.requests.filter((r) => r.path === "/_apis/token").at(-1)?.query).toEqual({
        "api-version": "2.0",
        audience: world.idp.issuer,
      });
      expect(log.lines.find((l) => l.event === "subject_token_obtained")).toMatchObject({
        source: "auto",
        claims: { repository: "acme/app" },
      });
    });

    it("picks GitLab from GITLAB_CI and reads the id_tokens variable", async () => {
      const token = await world.ci.mint({ style: "gitlab", aud: world.idp.issuer });
      const { provider: p } = provider({ type: "auto", audience: world.idp.issuer }, { GITLAB_CI: "true", OPENCODE_ID_TOKEN: token });
      await expectAccepted(await p.getToken());
      expect(world.idp.grants.at(-1)).toMatchObject({ ok: true, repository: "acme/app" });
    });

    it("on GitHub without the id-token permission, fails with GitHub's fix and sends nothing to the IdP", async () => {
      const grants = world.idp.grants.length;
      const { provider: p } = provider({ type: "auto", audience: world.idp.issuer }, { GITHUB_ACTIONS: "true" });
      const err = await rejectionOf(p.getToken());
      expect(err).toBeInstanceOf(lib.SubjectTokenUnavailableError);
      expect(err.message).toMatch(/github_actions subject token: .*`permissions: id-token: write`/);
      expect(world.idp.grants.length).toBe(grants);
    });
  });

  describe("buildkite and kubernetes sources through the real chain", () => {
    it("buildkite: the fake agent's token is exchanged for an access token", async () => {
      await agent.plan({ tokens: { [world.idp.issuer]: await world.ci.mint({ aud: world.idp.issuer }) } });
      const env = { BUILDKITE: "true", BUILDKITE_JOB_ID: "job-1", BUILDKITE_AGENT_ACCESS_TOKEN: "agent-token", PATH: pathWith(dir) };
      const { provider: p } = provider({ type: "buildkite", audience: world.idp.issuer, lifetimeSeconds: 900 }, env);
      await expectAccepted(await p.getToken());
      expect((await agent.calls()).at(-1)?.argv).toEqual(["oidc", "request-token", "--audience", world.idp.issuer, "--lifetime", "900"]);
    });

    it("kubernetes: the rotated file is read again for the next grant", async () => {
      const volume = join(dir, "tokens");
      await mkdir(volume, { recursive: true });
      const path = join(volume, "oidc-token");
      const first = await world.ci.mint({ aud: world.idp.issuer });
      await writeFile(path, first);
      const { provider: p } = provider({ type: "kubernetes", path, audience: world.idp.issuer }, { KUBERNETES_SERVICE_HOST: "10.0.0.1" });
      const a = await p.getToken();
      await expectAccepted(a);
      const second = await world.ci.mint({ aud: world.idp.issuer });
      await writeFile(path, second);
      p.invalidate(a.value);
      await expectAccepted(await p.getToken());
      expect(world.idp.grants.slice(-2).every((g) => g.ok)).toBe(true);
    });
  });
});

describe("through the plugin's config hook", () => {
  it("auto on Buildkite: the installed fetch lists the models with an access token the model server accepts", async () => {
    await agent.plan({ tokens: { [world.idp.issuer]: await world.ci.mint({ aud: world.idp.issuer }) } });
    const env = { BUILDKITE: "true", BUILDKITE_JOB_ID: "job-2", BUILDKITE_AGENT_ACCESS_TOKEN: "agent-token", PATH: pathWith(dir) };
    const log = captureLogger("trace");
    const registry = new ProviderRegistry();
    const config = {
      provider: {
        miaou: {
          options: {
            baseURL: world.model.baseURL,
            oauth2: {
              issuer: world.idp.issuer,
              clientId: IDP_CLIENTS.none,
              scopes: ["models.read"],
              subjectTokenSource: { type: "auto", audience: world.idp.issuer },
            },
          },
        } as Record<string, unknown>,
      },
    };
    const modelRequests = world.model.requests.length;
    await createConfigHook(registry, { logger: log.logger, env, argv: [] })(config as unknown as Config);

    const entry = config.provider.miaou as { models?: Record<string, unknown>; options: { fetch?: typeof globalThis.fetch } };
    // Model discovery ran through the authorized fetch: GET /models with a token the model server accepted.
    expect(Object.keys(entry.models ?? {})).toEqual(["mock-model"]);
    expect(world.model.requests.length).toBeGreaterThan(modelRequests);
    const answer = await entry.options.fetch?.(`${world.model.baseURL}/models`);
    expect(answer?.status).toBe(200);
    expect((await agent.calls()).at(-1)?.argv).toEqual(["oidc", "request-token", "--audience", world.idp.issuer]);
    expectNoLeak([log.text()], [...secrets(), { label: "agent token", value: "agent-token" }]);
  });
});
