/**
 * Proves the loopback test support works end to end, using openid-client 6 directly
 * (not the plugin's src): CI token → IdP grant → model server.
 */
import { importPKCS8 } from "jose";
import {
  ClientSecretBasic,
  ClientSecretPost,
  None,
  PrivateKeyJwt,
  ResponseBodyError,
  allowInsecureRequests,
  discovery,
  genericGrantRequest,
} from "openid-client";
import type { ClientAuth, Configuration } from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { JWT_BEARER, TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT } from "./support/idp.js";
import { startWorld } from "./support/world.js";
import type { World } from "./support/world.js";

let world: World;

beforeAll(async () => {
  world = await startWorld();
});

afterAll(async () => {
  await world?.close();
});

function configFor(clientId: string, auth: ClientAuth = None()): Promise<Configuration> {
  return discovery(new URL(world.idp.issuer), clientId, undefined, auth, { execute: [allowInsecureRequests], timeout: 5 });
}

/** Fetches a GitHub-style token the way a CI job does: audience appended to the URL's existing query. */
async function githubToken(audience: string): Promise<string> {
  const url = new URL(world.ci.requestUrl);
  url.searchParams.set("audience", audience);
  const res = await fetch(url, { headers: { authorization: `Bearer ${world.ci.requestToken}` } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { value: string };
  return body.value;
}

async function grantError(promise: Promise<unknown>): Promise<ResponseBodyError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ResponseBodyError);
  return err as ResponseBodyError;
}

describe("test support world", () => {
  it("exchanges a GitHub-style token via jwt-bearer for an access token the model server accepts", async () => {
    const config = await configFor("opencode-ci");
    expect(config.serverMetadata().issuer).toBe(world.idp.issuer);
    expect(config.serverMetadata().token_endpoint).toBe(world.idp.tokenEndpoint);

    const assertion = await githubToken(world.idp.issuer);
    const tokens = await genericGrantRequest(config, JWT_BEARER, { assertion, scope: "models.read" });
    expect(tokens.token_type).toBe("bearer");
    expect(tokens.expires_in).toBe(600);
    expect(tokens.scope).toBe("models.read");
    expect(world.idp.issuedTokens.has(tokens.access_token)).toBe(true);
    expect(await world.idp.isValidAccessToken(tokens.access_token)).toBe(true);
    expect(world.ci.requests.filter((r) => r.path === "/_apis/token").at(-1)?.query).toEqual({
      "api-version": "2.0",
      audience: world.idp.issuer,
    });

    const res = await fetch(`${world.model.baseURL}/models`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ object: "list", data: [{ id: "mock-model", object: "model" }] });

    const chat = await fetch(`${world.model.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.access_token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-model", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(chat.status).toBe(200);
    const sse = await chat.text();
    const events = sse.split("\n\n").filter(Boolean);
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e.slice("data: ".length)) as {
          choices: Array<{ delta: { content?: string }; finish_reason: string | null }>;
          usage?: unknown;
        },
    );
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello from the mock model");
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
    expect(chunks.at(-1)?.usage).toBeDefined();
    expect(world.model.requests.at(-1)?.status).toBe(200);
  });

  it("supports token exchange and records audience and resource", async () => {
    const config = await configFor("opencode-ci");
    const subject_token = await world.ci.mint({ aud: world.idp.issuer });
    const tokens = await genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token,
      subject_token_type: TOKEN_TYPE_JWT,
      audience: "https://models.example",
      resource: "https://models.example/v1",
    });
    expect(tokens["issued_token_type"]).toBe(TOKEN_TYPE_ACCESS_TOKEN);
    expect(await world.idp.isValidAccessToken(tokens.access_token)).toBe(true);
    expect(world.idp.grants.at(-1)).toMatchObject({
      grantType: TOKEN_EXCHANGE,
      clientId: "opencode-ci",
      ok: true,
      audience: "https://models.example",
      resource: "https://models.example/v1",
      repository: "acme/app",
    });
  });

  it("authenticates confidential clients (post, basic, private_key_jwt)", async () => {
    const { secrets, privateKeyPem, privateKeyKid } = world.idp;
    const key = await importPKCS8(privateKeyPem, "ES256");
    const configs = await Promise.all([
      configFor("ci-post", ClientSecretPost(secrets.post)),
      configFor("ci-basic", ClientSecretBasic(secrets.basic)),
      configFor("ci-pkjwt", PrivateKeyJwt({ key, kid: privateKeyKid })),
    ]);
    for (const config of configs) {
      const assertion = await world.ci.mint({ aud: world.idp.issuer });
      const tokens = await genericGrantRequest(config, JWT_BEARER, { assertion });
      expect(await world.idp.isValidAccessToken(tokens.access_token)).toBe(true);
    }
    const wrong = await configFor("ci-post", ClientSecretPost("not-the-secret"));
    const err = await grantError(genericGrantRequest(wrong, JWT_BEARER, { assertion: await world.ci.mint({ aud: world.idp.issuer }) }));
    expect(err.error).toBe("invalid_client");
  });

  it("refuses a token from a repository that is not allowed", async () => {
    world.ci.overrideNextClaims({ repository: "evil/fork", repository_owner: "evil", sub: "repo:evil/fork:ref:refs/heads/main" });
    const assertion = await githubToken(world.idp.issuer);
    const config = await configFor("opencode-ci");
    const err = await grantError(genericGrantRequest(config, JWT_BEARER, { assertion }));
    expect(err.error).toBe("invalid_grant");
    expect(err.error_description).toBe("repository evil/fork is not allowed");
    expect(world.idp.grants.at(-1)).toMatchObject({ ok: false, error: "invalid_grant", repository: "evil/fork" });
  });

  it("refuses wrong audience, expired and untrusted tokens with a visible reason", async () => {
    const config = await configFor("opencode-ci");
    const cases: Array<[Promise<string>, string]> = [
      [githubToken("https://github.com/acme"), "assertion audience mismatch"],
      [world.ci.mint({ aud: world.idp.issuer, exp: Math.floor(Date.now() / 1000) - 5 }), "assertion expired"],
      [world.ci.mint({ aud: world.idp.issuer, untrusted: true }), "assertion signature could not be verified"],
    ];
    for (const [assertion, description] of cases) {
      const err = await grantError(genericGrantRequest(config, JWT_BEARER, { assertion: await assertion }));
      expect(err.error).toBe("invalid_grant");
      expect(err.error_description).toBe(description);
    }
  });

  it("refuses token exchange for a client limited to jwt-bearer with unauthorized_client", async () => {
    const config = await configFor("no-exchange");
    const subject_token = await world.ci.mint({ aud: world.idp.issuer });
    const err = await grantError(genericGrantRequest(config, TOKEN_EXCHANGE, { subject_token, subject_token_type: TOKEN_TYPE_JWT }));
    expect(err.error).toBe("unauthorized_client");
  });

  it("rejects a GitHub token request whose api-version query was clobbered, or lacks the bearer", async () => {
    const clobbered = new URL(world.ci.requestUrl);
    clobbered.search = `?audience=${encodeURIComponent(world.idp.issuer)}`;
    const res = await fetch(clobbered, { headers: { authorization: `Bearer ${world.ci.requestToken}` } });
    expect(res.status).toBe(400);

    const noBearer = await fetch(world.ci.requestUrl);
    expect(noBearer.status).toBe(401);
  });

  it("answers 401 with OpenAI error JSON without a valid token, and on demand", async () => {
    const missing = await fetch(`${world.model.baseURL}/models`);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({
      error: { message: "invalid or missing access token", type: "invalid_request_error", code: "invalid_api_key" },
    });
    const bogus = await fetch(`${world.model.baseURL}/models`, { headers: { authorization: "Bearer not-a-token" } });
    expect(bogus.status).toBe(401);

    const config = await configFor("opencode-ci");
    const { access_token } = await genericGrantRequest(config, JWT_BEARER, { assertion: await world.ci.mint({ aud: world.idp.issuer }) });
    world.model.failNext401(1);
    const headers = { authorization: `Bearer ${access_token}` };
    expect((await fetch(`${world.model.baseURL}/models`, { headers })).status).toBe(401);
    expect((await fetch(`${world.model.baseURL}/models`, { headers })).status).toBe(200);

    await world.idp.revokeAccessToken(access_token);
    expect((await fetch(`${world.model.baseURL}/models`, { headers })).status).toBe(401);
  });
});
