/**
 * src/grant/grant.ts: both grants against the real oidc-provider IdP, every client authentication method, the
 * IdP's refusals as the user sees them, the non-OAuth failure paths (a loopback fixture stands in for a broken
 * token endpoint), the expiry rules, and that no error ever carries a token or a secret.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";

import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { oauth2Schema } from "../../src/config/schema.js";
import type { OAuth2Config, OAuth2Input } from "../../src/config/schema.js";
import { GrantRefusedError, GrantRequestError, TokenResponseError } from "../../src/errors.js";
import { createGrantClient } from "../../src/grant/client.js";
import { DEFAULT_LIFETIME_SECONDS, GRANT_TYPES, requestAccessToken, resolveExpiry } from "../../src/grant/grant.js";
import type { AccessToken } from "../../src/grant/grant.js";
import { closedPort, expectNoLeak, fp, rejectionOf } from "../support/harness.js";
import type { Secret } from "../support/harness.js";
import { IDP_CLIENTS, JWT_BEARER, TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN } from "../support/idp.js";
import { startWorld } from "../support/world.js";
import type { World } from "../support/world.js";

const PROVIDER = "acme-llm";

let world: World;
/** Every subject token handed to requestAccessToken in this file: none may appear in any error. */
const subjectTokens: string[] = [];

/** A scripted token endpoint for answers a real IdP does not give (HTML, 500, DPoP, echoed assertions). */
interface Fixture {
  server: Server;
  url: string;
  next(status: number, body: unknown, contentType?: string): void;
}
let fixture: Fixture;

function startFixture(): Promise<Fixture> {
  let reply: { status: number; body: unknown; contentType: string } = { status: 500, body: {}, contentType: "application/json" };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      let body = reply.body;
      // `ECHO` stands for the assertion the client sent: some IdPs quote it back in error_description.
      if (typeof body === "object" && body !== null) {
        body = JSON.parse(JSON.stringify(body).replaceAll("ECHO", form.get("assertion") ?? form.get("subject_token") ?? "")) as unknown;
      }
      res.writeHead(reply.status, { "content-type": reply.contentType });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://127.0.0.1:${port}/token`,
        next(status, body, contentType = "application/json") {
          reply = { status, body, contentType };
        },
      });
    }),
  );
}

beforeAll(async () => {
  world = await startWorld();
  fixture = await startFixture();
});

afterAll(async () => {
  await new Promise((resolve) => fixture?.server.close(resolve));
  await world?.close();
});

afterEach(() => {
  world.idp.setAccessTokenTtl(600);
});

function config(input: Partial<OAuth2Input>): OAuth2Config {
  return oauth2Schema.parse({
    issuer: world.idp.issuer,
    clientId: IDP_CLIENTS.none,
    subjectTokenSource: { type: "env", var: "UNUSED_IN_THESE_TESTS" },
    ...input,
  });
}

async function subject(opts: Parameters<World["ci"]["mint"]>[0] = {}): Promise<string> {
  const token = await world.ci.mint({ aud: world.idp.issuer, ...opts });
  subjectTokens.push(token);
  return token;
}

function allSecrets(): Secret[] {
  return [
    ...subjectTokens.map((value, i) => ({ label: `subject token #${i}`, value })),
    { label: "ci-post secret", value: world.idp.secrets.post },
    { label: "ci-basic secret", value: world.idp.secrets.basic },
    ...[...world.idp.issuedTokens].map((value, i) => ({ label: `access token #${i}`, value })),
  ];
}

/** The message, String(err), its JSON and its inspected form (cause chain included) must hold no secret. */
function expectErrorIsClean(err: Error, extra: Secret[] = []): void {
  expectNoLeak([err.message, String(err), JSON.stringify(err), inspect(err, { depth: 8 })], [...allSecrets(), ...extra]);
}

/** An AccessToken with its value replaced by a fingerprint, so a failing assertion prints no token. */
function shown(token: AccessToken): Omit<AccessToken, "value"> & { value: string } {
  return { ...token, value: fp(token.value) };
}

async function grant(cfg: OAuth2Config, subjectToken: string, now?: () => number): Promise<AccessToken> {
  const configuration = await createGrantClient(PROVIDER, cfg);
  return requestAccessToken(configuration, cfg, subjectToken, { providerId: PROVIDER, ...(now ? { now } : {}) });
}

describe("jwt_bearer (RFC 7523) against the IdP", () => {
  it("returns the IdP-issued token, the echoed scope, and an expiry of now + expires_in", async () => {
    const now = Date.now() - 123_456; // a clock distinct from the real one, to prove it is the injected one that counts
    const cfg = config({ scopes: ["models.read"] });
    const token = await grant(cfg, await subject(), () => now);
    expect(world.idp.issuedTokens.has(token.value)).toBe(true);
    expect(await world.idp.isValidAccessToken(token.value)).toBe(true);
    expect(shown(token)).toEqual({
      value: fp(token.value),
      tokenType: "Bearer",
      issuedAt: now,
      expiresAt: now + 600_000,
      expirySource: "expires_in",
      scope: "models.read",
    });
    expect(world.idp.grants.at(-1)).toEqual({
      grantType: JWT_BEARER,
      clientId: IDP_CLIENTS.none,
      ok: true,
      scope: "models.read",
      repository: "acme/app",
    });
  });

  it("follows the IdP's lifetime (ttl 90 s) with the real clock", async () => {
    world.idp.setAccessTokenTtl(90);
    const before = Date.now();
    const token = await grant(config({}), await subject());
    const after = Date.now();
    expect(token.expirySource).toBe("expires_in");
    expect(token.issuedAt).toBeGreaterThanOrEqual(before);
    expect(token.issuedAt).toBeLessThanOrEqual(after);
    expect(token.expiresAt - token.issuedAt).toBe(90_000);
    expect(token.scope).toBeUndefined();
  });

  it("sends several scopes space-separated (from a comma-separated config string)", async () => {
    const token = await grant(config({ scopes: "openid,models.read" }), await subject());
    expect(token.scope).toBe("openid models.read");
    expect(world.idp.grants.at(-1)?.scope).toBe("openid models.read");
  });
});

describe("token_exchange (RFC 8693) against the IdP", () => {
  it("sends tokenExchangeAudience and tokenExchangeResource, which the IdP records", async () => {
    const cfg = config({
      authFlow: "token_exchange",
      tokenExchangeAudience: ["https://models.example", "https://backup.example"],
      tokenExchangeResource: "https://models.example/v1",
      scopes: ["models.read"],
    });
    const token = await grant(cfg, await subject());
    expect(world.idp.issuedTokens.has(token.value)).toBe(true);
    expect(token).toMatchObject({ tokenType: "Bearer", expirySource: "expires_in", scope: "models.read" });
    expect(world.idp.grants.at(-1)).toEqual({
      grantType: TOKEN_EXCHANGE,
      clientId: IDP_CLIENTS.none,
      ok: true,
      audience: "https://models.example https://backup.example",
      resource: "https://models.example/v1",
      scope: "models.read",
      repository: "acme/app",
    });
  });

  it("sends subjectTokenType and requestedTokenType as configured", async () => {
    const cfg = config({ authFlow: "token_exchange", subjectTokenType: TOKEN_TYPE_ID_TOKEN, requestedTokenType: TOKEN_TYPE_ACCESS_TOKEN });
    const token = await grant(cfg, await subject());
    expect(world.idp.issuedTokens.has(token.value)).toBe(true);
    expect(world.idp.grants.at(-1)).toMatchObject({ grantType: TOKEN_EXCHANGE, ok: true });
    expect(world.idp.grants.at(-1)?.audience).toBeUndefined();
    expect(world.idp.grants.at(-1)?.resource).toBeUndefined();
  });

  it("an unsupported requested_token_type is refused with the IdP's own description", async () => {
    const cfg = config({ authFlow: "token_exchange", requestedTokenType: "urn:ietf:params:oauth:token-type:saml2" });
    const err = await rejectionOf(grant(cfg, await subject()));
    expect(err).toBeInstanceOf(GrantRefusedError);
    expect(err).toMatchObject({
      error: "invalid_request",
      errorDescription: "unsupported requested_token_type urn:ietf:params:oauth:token-type:saml2",
    });
    expectErrorIsClean(err);
  });
});

describe("client authentication", () => {
  it.each([
    ["none", () => config({ clientId: IDP_CLIENTS.none }), IDP_CLIENTS.none],
    [
      "client_secret_post",
      () => config({ clientId: IDP_CLIENTS.post, clientSecret: world.idp.secrets.post, tokenEndpointAuthMethod: "client_secret_post" }),
      IDP_CLIENTS.post,
    ],
    [
      "client_secret_basic",
      () => config({ clientId: IDP_CLIENTS.basic, clientSecret: world.idp.secrets.basic, tokenEndpointAuthMethod: "client_secret_basic" }),
      IDP_CLIENTS.basic,
    ],
  ] as const)("%s succeeds with its client", async (_method, make, clientId) => {
    for (const flow of ["jwt_bearer", "token_exchange"] as const) {
      const token = await grant({ ...make(), authFlow: flow }, await subject());
      expect(world.idp.issuedTokens.has(token.value)).toBe(true);
      expect(world.idp.grants.at(-1)).toMatchObject({ grantType: GRANT_TYPES[flow], clientId, ok: true });
    }
  });

  it.each([
    ["client_secret_post", IDP_CLIENTS.post],
    ["client_secret_basic", IDP_CLIENTS.basic],
  ] as const)("a wrong secret with %s -> GrantRefusedError invalid_client, the secret not in the error", async (method, clientId) => {
    const wrong = `wrong-${randomBytes(16).toString("hex")}`;
    const err = await rejectionOf(grant(config({ clientId, clientSecret: wrong, tokenEndpointAuthMethod: method }), await subject()));
    expect(err).toBeInstanceOf(GrantRefusedError);
    expect(err).toMatchObject({
      code: "ERR_GRANT_REFUSED",
      step: "grant",
      providerId: PROVIDER,
      grantType: "jwt_bearer",
      error: "invalid_client",
      status: 401,
    });
    expect(err.message).toMatch(/check clientId, clientSecret and tokenEndpointAuthMethod/);
    expect(world.idp.grants.at(-1)).toMatchObject({ clientId, ok: false, error: "invalid_client" });
    expectErrorIsClean(err, [{ label: "the wrong secret", value: wrong }]);
  });
});

describe("refusals keep the IdP's error and description and name provider and grant type", () => {
  interface RefusalCase {
    name: string;
    cfg: () => OAuth2Config;
    token: () => Promise<string>;
    flow: "jwt_bearer" | "token_exchange";
    error: string;
    description: string | RegExp;
    hint: RegExp;
  }
  const cases: RefusalCase[] = [
    {
      name: "a subject token minted for another audience",
      cfg: () => config({}),
      token: () => subject({ aud: "https://github.com/acme" }),
      flow: "jwt_bearer",
      error: "invalid_grant",
      description: "assertion audience mismatch",
      hint: /trust policy/,
    },
    {
      name: "a repository the IdP does not allow (evil/fork)",
      cfg: () => config({}),
      token: () => subject({ claims: { repository: "evil/fork", repository_owner: "evil", sub: "repo:evil/fork:ref:refs/heads/main" } }),
      flow: "jwt_bearer",
      error: "invalid_grant",
      description: "repository evil/fork is not allowed",
      hint: /trust policy/,
    },
    {
      name: "an expired assertion (no local check on this path)",
      cfg: () => config({}),
      token: () => subject({ iat: Math.floor(Date.now() / 1000) - 600, exp: Math.floor(Date.now() / 1000) - 30 }),
      flow: "jwt_bearer",
      error: "invalid_grant",
      description: "assertion expired",
      hint: /trust policy/,
    },
    {
      name: "a signature the IdP cannot verify",
      cfg: () => config({}),
      token: () => subject({ untrusted: true }),
      flow: "jwt_bearer",
      error: "invalid_grant",
      description: "assertion signature could not be verified",
      hint: /trust policy/,
    },
    {
      name: "token_exchange with a subject token for another audience",
      cfg: () => config({ authFlow: "token_exchange" }),
      token: () => subject({ aud: "https://elsewhere.example" }),
      flow: "token_exchange",
      error: "invalid_grant",
      description: "subject_token audience mismatch",
      hint: /trust policy/,
    },
    {
      name: "token_exchange on a client limited to jwt-bearer",
      cfg: () => config({ clientId: IDP_CLIENTS.noExchange, authFlow: "token_exchange" }),
      token: () => subject(),
      flow: "token_exchange",
      error: "unauthorized_client",
      description: `client ${IDP_CLIENTS.noExchange} is not allowed to use grant type ${TOKEN_EXCHANGE}`,
      hint: /enable it for the client at the IdP/,
    },
    {
      name: "a scope the client may not request",
      cfg: () => config({ scopes: ["admin"] }),
      token: () => subject(),
      flow: "jwt_bearer",
      error: "invalid_scope",
      description: "requested scope is not allowed",
      hint: /Check oauth2\.scopes/,
    },
  ];

  it.each(cases)("$name -> $error", async (c) => {
    const before = world.idp.grants.length;
    const err = await rejectionOf(grant(c.cfg(), await c.token()));
    expect(err).toBeInstanceOf(GrantRefusedError);
    const refused = err as GrantRefusedError;
    expect(refused).toMatchObject({
      code: "ERR_GRANT_REFUSED",
      step: "grant",
      providerId: PROVIDER,
      grantType: c.flow,
      error: c.error,
      status: 400,
    });
    expect(refused.errorDescription).toMatch(c.description);
    // Exactly what the IdP sent, as it recorded it.
    expect(world.idp.grants.length).toBe(before + 1);
    const record = world.idp.grants.at(-1);
    expect(record).toMatchObject({ grantType: GRANT_TYPES[c.flow], ok: false, error: c.error });
    expect(refused.errorDescription).toBe(record?.errorDescription);
    expect(refused.message).toContain(`provider "${PROVIDER}"`);
    expect(refused.message).toContain(`the IdP refused the ${c.flow} grant (${c.error}: ${refused.errorDescription}).`);
    expect(refused.message).toMatch(c.hint);
    expectErrorIsClean(err);
  });
});

describe("answers that are not an OAuth token response", () => {
  async function fixtureGrant(flow: "jwt_bearer" | "token_exchange" = "jwt_bearer"): Promise<AccessToken> {
    const cfg = config({ issuer: undefined, tokenEndpoint: fixture.url, authFlow: flow });
    return grant(cfg, await subject());
  }

  it("an unreachable token endpoint -> GrantRequestError naming the endpoint and the cause", async () => {
    const url = `http://127.0.0.1:${await closedPort()}/token`;
    const err = await rejectionOf(grant(config({ issuer: undefined, tokenEndpoint: url }), await subject()));
    expect(err).toBeInstanceOf(GrantRequestError);
    expect(err).toMatchObject({ code: "ERR_GRANT_REQUEST", grantType: "jwt_bearer", providerId: PROVIDER });
    expect(err.message).toContain(`could not reach the token endpoint at ${url} (TypeError ECONNREFUSED)`);
    expectErrorIsClean(err);
  });

  it("HTTP 500 -> a transient GrantRequestError with the status, saying the IdP is failing", async () => {
    fixture.next(500, { message: "upstream database down" });
    const err = await rejectionOf(fixtureGrant());
    expect(err).toBeInstanceOf(GrantRequestError);
    expect(err).toMatchObject({ transient: true, summary: "HTTP 500" });
    expect(err.message).toContain(`the token endpoint at ${fixture.url} answered HTTP 500 (the IdP is failing or overloaded).`);
    expectErrorIsClean(err);
  });

  it('an HTML page with 200 -> TokenResponseError "not JSON"', async () => {
    fixture.next(200, "<html>sign in</html>", "text/html");
    const err = await rejectionOf(fixtureGrant());
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(err).toMatchObject({ code: "ERR_TOKEN_RESPONSE_INVALID" });
    expect(err.message).toMatch(/answered something that is not JSON/);
  });

  it("a DPoP-bound token is refused: it cannot be sent as a bearer", async () => {
    const bound = `at-${randomBytes(20).toString("hex")}`;
    fixture.next(200, { access_token: bound, token_type: "DPoP", expires_in: 60 });
    const err = await rejectionOf(fixtureGrant());
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(err.message).toMatch(/token of type "dpop"; only Bearer tokens are supported/);
    expectErrorIsClean(err, [{ label: "the DPoP-bound access token", value: bound }]);
  });

  it("token_exchange: an issued token of type N_A is accepted and used as a bearer", async () => {
    const value = `na-${randomBytes(20).toString("hex")}`;
    fixture.next(200, {
      access_token: value,
      token_type: "N_A",
      issued_token_type: "urn:ietf:params:oauth:token-type:jwt",
      expires_in: 120,
    });
    const token = await fixtureGrant("token_exchange");
    expect(fp(token.value)).toBe(fp(value));
    expect(token).toMatchObject({ tokenType: "Bearer", expirySource: "expires_in" });
    expect(token.expiresAt - token.issuedAt).toBe(120_000);
  });

  it("an error_description that echoes the assertion is scrubbed from the message", async () => {
    fixture.next(400, { error: "invalid_grant", error_description: "assertion ECHO is not acceptable" });
    const err = await rejectionOf(fixtureGrant());
    expect(err).toBeInstanceOf(GrantRefusedError);
    expect((err as GrantRefusedError).errorDescription).toBe("assertion [redacted] is not acceptable");
    expectNoLeak([err.message, String(err), JSON.stringify(err)], allSecrets());
  });

  it("a 200 without access_token -> TokenResponseError", async () => {
    fixture.next(200, { token_type: "bearer", expires_in: 60 });
    const err = await rejectionOf(fixtureGrant());
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(err.message).toContain(`the token endpoint at ${fixture.url} answered an invalid token response`);
    // The specific reason from oauth4webapi, not openid-client's generic wrapper text.
    expect(err.message).toMatch(/"access_token" property must be/);
  });
});

describe("the expiry is counted from when the grant was sent", () => {
  it("so a slow answer never makes the token outlive the IdP's view of it", async () => {
    const cfg = config({});
    const configuration = await createGrantClient(PROVIDER, cfg);
    // The clock reads 1000 when the request leaves and 9000 afterwards (an 8 s answer).
    const readings = [1_000, 9_000, 9_000, 9_000];
    const token = await requestAccessToken(configuration, cfg, await subject(), {
      providerId: PROVIDER,
      now: () => readings.shift() ?? 9_000,
    });
    expect(token.issuedAt).toBe(1_000);
    expect(token.expiresAt).toBe(1_000 + 600_000);
  });
});

describe("resolveExpiry", () => {
  const now = 1_750_000_000_000;
  const secret = new TextEncoder().encode("unit-test-hmac-key-unit-test-hmac-key");
  const jwtWithExp = (expSeconds: number) =>
    new SignJWT({ sub: "svc" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expSeconds)
      .sign(secret);

  it("expires_in wins: now + expires_in seconds", () => {
    expect(resolveExpiry({ access_token: "opaque", expires_in: 120 }, now)).toEqual({
      expiresAt: now + 120_000,
      expirySource: "expires_in",
    });
    expect(resolveExpiry({ access_token: "opaque", expires_in: 0.5 }, now)).toEqual({ expiresAt: now + 500, expirySource: "expires_in" });
  });

  it("expires_in also wins over a JWT exp", async () => {
    const jwt = await jwtWithExp(Math.floor(now / 1000) + 3600);
    expect(resolveExpiry({ access_token: jwt, expires_in: 60 }, now)).toEqual({ expiresAt: now + 60_000, expirySource: "expires_in" });
  });

  it("no expires_in, a JWT access token with exp -> its exp", async () => {
    const exp = Math.floor(now / 1000) + 900;
    expect(resolveExpiry({ access_token: await jwtWithExp(exp) }, now)).toEqual({ expiresAt: exp * 1000, expirySource: "jwt_exp" });
  });

  it('no expires_in, an opaque token -> DEFAULT_LIFETIME_SECONDS, source "default"', () => {
    expect(DEFAULT_LIFETIME_SECONDS).toBeGreaterThan(0);
    expect(resolveExpiry({ access_token: "opaque-token-value" }, now)).toEqual({
      expiresAt: now + DEFAULT_LIFETIME_SECONDS * 1000,
      expirySource: "default",
    });
  });

  it.each([0, -30, Number.NaN, Number.POSITIVE_INFINITY, "600", null])("expires_in %s is ignored -> fallback", async (bad) => {
    expect(resolveExpiry({ access_token: "opaque", expires_in: bad }, now)).toEqual({
      expiresAt: now + DEFAULT_LIFETIME_SECONDS * 1000,
      expirySource: "default",
    });
    const exp = Math.floor(now / 1000) + 240;
    expect(resolveExpiry({ access_token: await jwtWithExp(exp), expires_in: bad }, now)).toEqual({
      expiresAt: exp * 1000,
      expirySource: "jwt_exp",
    });
  });

  it("a JWT whose exp is already past is not trusted as an expiry -> default", async () => {
    const jwt = await jwtWithExp(Math.floor(now / 1000) - 10);
    expect(resolveExpiry({ access_token: jwt }, now)).toEqual({
      expiresAt: now + DEFAULT_LIFETIME_SECONDS * 1000,
      expirySource: "default",
    });
  });

  it("end to end: a token endpoint that sends no expires_in and a JWT access token", async () => {
    const exp = Math.floor(Date.now() / 1000) + 777;
    const jwt = await new SignJWT({ sub: "svc" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(exp).sign(secret);
    fixture.next(200, { access_token: jwt, token_type: "Bearer" });
    const token = await grant(config({ issuer: undefined, tokenEndpoint: fixture.url }), await subject());
    expect(token).toMatchObject({ expiresAt: exp * 1000, expirySource: "jwt_exp" });
    fixture.next(200, { access_token: "opaque-no-expiry", token_type: "Bearer" });
    const fallback = await grant(config({ issuer: undefined, tokenEndpoint: fixture.url }), await subject(), () => now);
    expect(fallback).toMatchObject({ issuedAt: now, expiresAt: now + DEFAULT_LIFETIME_SECONDS * 1000, expirySource: "default" });
  });
});

describe("secrets never reach an error", () => {
  it("the checks above had material to check: subject tokens, both secrets and issued tokens", () => {
    // Guards against a vacuous leak check (e.g. if the lists above were emptied by a refactor).
    expect(subjectTokens.length).toBeGreaterThan(10);
    expect(world.idp.issuedTokens.size).toBeGreaterThan(5);
  });
});
