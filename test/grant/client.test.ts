/**
 * src/grant/client.ts against the real oidc-provider IdP: discovery, the static tokenEndpoint path, the errors a
 * user sees when discovery cannot work, the default client authentication method, and private_key_jwt key files.
 */
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { oauth2Schema } from "../../src/config/schema.js";
import type { OAuth2Config, OAuth2Input } from "../../src/config/schema.js";
import { CiAuthError, DiscoveryError, GrantRefusedError } from "../../src/errors.js";
import { DEFAULT_TIMEOUT_SECONDS } from "../../src/config/defaults.js";
import { createGrantClient, resolveAuthMethod } from "../../src/grant/client.js";
import { requestAccessToken } from "../../src/grant/grant.js";
import { closedPort, expectNoLeak, recordingFetch, rejectionOf } from "../support/harness.js";
import { IDP_CLIENTS, JWT_BEARER } from "../support/idp.js";
import { startWorld } from "../support/world.js";
import type { World } from "../support/world.js";

const PROVIDER = "acme-llm";

let world: World;
let dir: string;
/** A discovery-document fixture on loopback for shapes the real IdP never serves (path issuers, broken documents). */
let fixture: { server: Server; origin: string; hits: string[] };

function startDiscoveryFixture(tokenEndpoint: string): Promise<{ server: Server; origin: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    const { port } = server.address() as AddressInfo;
    const origin = `http://127.0.0.1:${port}`;
    const path = new URL(req.url ?? "/", origin).pathname;
    hits.push(path);
    const json = (body: unknown) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    switch (path) {
      case "/realms/acme/.well-known/openid-configuration":
        return json({ issuer: `${origin}/realms/acme`, token_endpoint: tokenEndpoint });
      case "/no-token/.well-known/openid-configuration":
        return json({ issuer: `${origin}/no-token` });
      case "/insecure/.well-known/openid-configuration":
        return json({ issuer: `${origin}/insecure`, token_endpoint: "http://idp.example.test/token" });
      case "/html/.well-known/openid-configuration":
        res.writeHead(200, { "content-type": "text/html" });
        return res.end("<html><body>login</body></html>");
      default:
        res.writeHead(404, { "content-type": "application/json" });
        return res.end('{"error":"not_found"}');
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, origin: `http://127.0.0.1:${port}`, hits });
    }),
  );
}

beforeAll(async () => {
  world = await startWorld();
  fixture = await startDiscoveryFixture(world.idp.tokenEndpoint);
  dir = await mkdtemp(join(tmpdir(), "ci-auth-client-"));
});

afterAll(async () => {
  await new Promise((resolve) => fixture?.server.close(resolve));
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function config(input: Partial<OAuth2Input>): OAuth2Config {
  return oauth2Schema.parse({
    issuer: world.idp.issuer,
    clientId: IDP_CLIENTS.none,
    subjectTokenSource: { type: "env", var: "UNUSED_IN_THESE_TESTS" },
    ...input,
  });
}

/** One jwt-bearer grant with a freshly minted, valid CI token; returns the IdP's record of it. */
async function grantOnce(cfg: OAuth2Config, fetch?: typeof globalThis.fetch) {
  const configuration = await createGrantClient(PROVIDER, cfg, { fetch });
  const before = world.idp.grants.length;
  const token = await requestAccessToken(configuration, cfg, await world.ci.mint({ aud: world.idp.issuer }), { providerId: PROVIDER });
  expect(world.idp.issuedTokens.has(token.value)).toBe(true);
  expect(world.idp.grants.length).toBe(before + 1);
  return world.idp.grants.at(-1);
}

describe("discovery from issuer", () => {
  it("finds the token endpoint in the discovery document and can run a grant with it", async () => {
    const configuration = await createGrantClient(PROVIDER, config({}));
    expect(configuration.serverMetadata().issuer).toBe(world.idp.issuer);
    expect(configuration.serverMetadata().token_endpoint).toBe(world.idp.tokenEndpoint);
    expect(configuration.clientMetadata().client_id).toBe(IDP_CLIENTS.none);
    expect(configuration.timeout).toBe(DEFAULT_TIMEOUT_SECONDS);
    expect(await grantOnce(config({}))).toMatchObject({ grantType: JWT_BEARER, clientId: IDP_CLIENTS.none, ok: true });
  });

  it("sends discovery and the grant through the injected fetch", async () => {
    const rec = recordingFetch();
    await grantOnce(config({}), rec.fetch);
    expect(rec.calls).toEqual([
      { method: "GET", url: `${world.idp.issuer}/.well-known/openid-configuration` },
      { method: "POST", url: world.idp.tokenEndpoint },
    ]);
  });

  it('treats a trailing slash on an origin-only issuer as the same URL (WHATWG normalises both to "/")', async () => {
    const configuration = await createGrantClient(PROVIDER, config({ issuer: `${world.idp.issuer}/` }));
    expect(configuration.serverMetadata().token_endpoint).toBe(world.idp.tokenEndpoint);
  });

  it("discovers an issuer that has a path (Keycloak-style realm)", async () => {
    const cfg = config({ issuer: `${fixture.origin}/realms/acme` });
    const configuration = await createGrantClient(PROVIDER, cfg);
    expect(configuration.serverMetadata().issuer).toBe(`${fixture.origin}/realms/acme`);
    expect(configuration.serverMetadata().token_endpoint).toBe(world.idp.tokenEndpoint);
    expect(fixture.hits.at(-1)).toBe("/realms/acme/.well-known/openid-configuration");
  });
});

describe("explicit tokenEndpoint skips discovery", () => {
  it("works without an issuer, and sends only the grant request", async () => {
    const rec = recordingFetch();
    const cfg = config({ issuer: undefined, tokenEndpoint: world.idp.tokenEndpoint });
    expect(cfg.issuer).toBeUndefined();
    const configuration = await createGrantClient(PROVIDER, cfg, { fetch: rec.fetch });
    expect(rec.calls).toEqual([]);
    expect(configuration.serverMetadata().token_endpoint).toBe(world.idp.tokenEndpoint);
    // Without an issuer, the token endpoint stands in for it (the aud of private_key_jwt assertions).
    expect(configuration.serverMetadata().issuer).toBe(world.idp.tokenEndpoint);
    expect(await grantOnce(cfg, rec.fetch)).toMatchObject({ ok: true, clientId: IDP_CLIENTS.none });
    expect(rec.calls).toEqual([{ method: "POST", url: world.idp.tokenEndpoint }]);
  });

  it("never contacts the issuer: a grant succeeds although the issuer is a closed port", async () => {
    const deadIssuer = `http://127.0.0.1:${await closedPort()}`;
    // Control: discovery at that issuer really fails.
    await expect(createGrantClient(PROVIDER, config({ issuer: deadIssuer }))).rejects.toBeInstanceOf(DiscoveryError);

    const rec = recordingFetch();
    const cfg = config({ issuer: deadIssuer, tokenEndpoint: world.idp.tokenEndpoint });
    expect(await grantOnce(cfg, rec.fetch)).toMatchObject({ ok: true });
    expect(rec.calls.filter((c) => c.url.startsWith(deadIssuer))).toEqual([]);
    expect(rec.calls).toEqual([{ method: "POST", url: world.idp.tokenEndpoint }]);
  });
});

describe("discovery failures are DiscoveryErrors that say what to fix", () => {
  async function discoveryError(cfg: OAuth2Config): Promise<DiscoveryError> {
    const err = await rejectionOf(createGrantClient(PROVIDER, cfg));
    expect(err).toBeInstanceOf(DiscoveryError);
    const d = err as DiscoveryError;
    expect(d).toMatchObject({ code: "ERR_DISCOVERY", step: "discovery", providerId: PROVIDER });
    expect(d.message).toContain(`provider "${PROVIDER}"`);
    return d;
  }

  it('issuer "localhost" vs the document\'s "127.0.0.1": the message says they must match', async () => {
    const issuer = world.idp.issuer.replace("127.0.0.1", "localhost");
    const err = await discoveryError(config({ issuer }));
    expect(err.message).toContain(`discovery at ${issuer}/ did not succeed`);
    expect(err.message).toMatch(/differs from the configured issuer\. They must match exactly/);
    expect((err.cause as { code?: string }).code).toBe("OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED");
  });

  it("a trailing slash on an issuer with a path is a mismatch, and says so", async () => {
    const issuer = `${fixture.origin}/realms/acme/`;
    const err = await discoveryError(config({ issuer }));
    expect(err.message).toContain(issuer);
    expect(err.message).toMatch(/They must match exactly \(scheme, host, port, path, trailing slash\)/);
  });

  it("an unreachable issuer: names the issuer and the network cause", async () => {
    const issuer = `http://127.0.0.1:${await closedPort()}`;
    const err = await discoveryError(config({ issuer }));
    expect(err.message).toContain(`discovery at ${issuer}/ did not succeed`);
    expect(err.message).toMatch(/could not reach it \(TypeError ECONNREFUSED\)/);
  });

  it("a 404 discovery document: names the status and suggests tokenEndpoint", async () => {
    const issuer = `${world.idp.issuer}/not-a-realm`;
    const err = await discoveryError(config({ issuer }));
    expect(err.message).toContain(issuer);
    expect(err.message).toMatch(/answered HTTP 404 .*set oauth2\.tokenEndpoint to skip discovery/);
  });

  it("an HTML answer: says it is not JSON", async () => {
    const err = await discoveryError(config({ issuer: `${fixture.origin}/html` }));
    expect(err.message).toMatch(/the answer is not JSON/);
  });

  it("a document without token_endpoint", async () => {
    const err = await discoveryError(config({ issuer: `${fixture.origin}/no-token` }));
    expect(err.message).toMatch(/has no token_endpoint\. Set oauth2\.tokenEndpoint explicitly/);
  });

  it("a discovered token endpoint on plain http to a non-loopback host is refused", async () => {
    const err = await discoveryError(config({ issuer: `${fixture.origin}/insecure` }));
    expect(err.message).toContain("http://idp.example.test");
    expect(err.message).toMatch(/is not https/);
  });

  // BUG (src/grant/client.ts createGrantClient): the configured issuer is never checked with insecureReason().
  // openid-client refuses the http request itself (OAUTH_HTTP_REQUEST_FORBIDDEN) and the user is told
  // "could not reach it ... check that the job can reach the IdP", which is not the problem.
  it("a configured http:// issuer on a non-loopback host is refused before any request, as not https", async () => {
    const rec = recordingFetch();
    // The schema refuses this too (schema.test.ts); a library caller can still hand-build such a config.
    const cfg: OAuth2Config = { ...config({}), issuer: "http://idp.example.test/realms/acme" };
    const err = await rejectionOf(createGrantClient(PROVIDER, cfg, { fetch: rec.fetch }));
    expect(rec.calls).toEqual([]);
    expect(err).toBeInstanceOf(CiAuthError);
    expect(err.message).toMatch(/is not https/);
    expect(err.message).not.toMatch(/could not reach/);
  });

  // BUG (src/grant/client.ts createGrantClient, tokenEndpoint branch): no insecureReason() check. The grant then
  // fails inside openid-client with OAUTH_HTTP_REQUEST_FORBIDDEN, reported as a TokenResponseError claiming the
  // endpoint "answered an invalid token response", although nothing was sent.
  it("a configured http:// tokenEndpoint on a non-loopback host is refused as not https, and nothing is sent", async () => {
    const rec = recordingFetch();
    const cfg: OAuth2Config = {
      ...config({ issuer: undefined, tokenEndpoint: world.idp.tokenEndpoint }),
      tokenEndpoint: "http://idp.example.test/token",
    };
    const err = await rejectionOf(
      (async () => {
        const configuration = await createGrantClient(PROVIDER, cfg, { fetch: rec.fetch });
        return requestAccessToken(configuration, cfg, await world.ci.mint({ aud: world.idp.issuer }), { providerId: PROVIDER });
      })(),
    );
    expect(rec.calls).toEqual([]);
    expect(err).toBeInstanceOf(CiAuthError);
    expect(err.message).toMatch(/is not https/);
    expect(err.message).not.toMatch(/answered/);
  });
});

describe("resolveAuthMethod", () => {
  it.each([
    ["no secret, no method -> none (public client)", {}, "none"],
    ["a secret, no method -> client_secret_post", { clientSecret: "s3cret" }, "client_secret_post"],
    [
      "explicit client_secret_basic wins over the secret default",
      { clientSecret: "s3cret", tokenEndpointAuthMethod: "client_secret_basic" },
      "client_secret_basic",
    ],
    ["explicit client_secret_post", { clientSecret: "s3cret", tokenEndpointAuthMethod: "client_secret_post" }, "client_secret_post"],
    ["explicit none", { tokenEndpointAuthMethod: "none" }, "none"],
    ["explicit private_key_jwt", { tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: "/nonexistent/key.pem" }, "private_key_jwt"],
  ] as const)("%s", (_name, input, expected) => {
    expect(resolveAuthMethod(config(input as Partial<OAuth2Input>))).toBe(expected);
  });

  it("the defaults hold on the wire: a secret alone goes in the form body (post), never in a Basic header", async () => {
    /** How each token request authenticated the client, observed on the request itself (values never kept). */
    const seen: Array<{ basicHeader: boolean; secretInBody: boolean; clientIdInBody: boolean }> = [];
    const observing = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      if (init?.method === "POST") {
        const headers = new Headers(init.headers);
        const body = new URLSearchParams(init.body as URLSearchParams);
        seen.push({
          basicHeader: (headers.get("authorization") ?? "").toLowerCase().startsWith("basic "),
          secretInBody: body.has("client_secret"),
          clientIdInBody: body.get("client_id") !== null,
        });
      }
      return fetch(input, init);
    }) as typeof fetch;

    const post = config({ clientId: IDP_CLIENTS.post, clientSecret: world.idp.secrets.post });
    expect(post.tokenEndpointAuthMethod).toBeUndefined();
    expect(await grantOnce(post, observing)).toMatchObject({ clientId: IDP_CLIENTS.post, ok: true });

    const basic = config({
      clientId: IDP_CLIENTS.basic,
      clientSecret: world.idp.secrets.basic,
      tokenEndpointAuthMethod: "client_secret_basic",
    });
    expect(await grantOnce(basic, observing)).toMatchObject({ clientId: IDP_CLIENTS.basic, ok: true });

    const none = config({});
    expect(await grantOnce(none, observing)).toMatchObject({ clientId: IDP_CLIENTS.none, ok: true });

    expect(seen).toEqual([
      { basicHeader: false, secretInBody: true, clientIdInBody: true },
      { basicHeader: true, secretInBody: false, clientIdInBody: false },
      { basicHeader: false, secretInBody: false, clientIdInBody: true },
    ]);
  });
});

describe("private_key_jwt", () => {
  let keyPath: string;

  beforeAll(async () => {
    keyPath = join(dir, "ci-pkjwt.pem");
    await writeFile(keyPath, world.idp.privateKeyPem, { mode: 0o600 });
  });

  function pkjwt(path: string, extra: Partial<OAuth2Input> = {}): OAuth2Config {
    return config({ clientId: IDP_CLIENTS.privateKeyJwt, tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: path, ...extra });
  }

  /**
   * The key body of a file cut into aligned 12-character pieces: any leaked excerpt of 23+ characters contains
   * at least one of them, so not even part of the key may appear in an error.
   */
  async function keyMaterial(path: string): Promise<Array<{ label: string; value: string }>> {
    const body = (await readFile(path, "utf8"))
      .split("\n")
      .filter((l) => !l.startsWith("-----"))
      .join("");
    const pieces: Array<{ label: string; value: string }> = [];
    for (let i = 0; i + 12 <= body.length; i += 12) pieces.push({ label: `key bytes ${i}..${i + 12}`, value: body.slice(i, i + 12) });
    return pieces;
  }

  async function configError(cfg: OAuth2Config): Promise<CiAuthError> {
    const err = await rejectionOf(createGrantClient(PROVIDER, cfg));
    expect(err).toBeInstanceOf(CiAuthError);
    expect(err).toMatchObject({ code: "ERR_CONFIG_INVALID", step: "config", providerId: PROVIDER });
    expect(err.message).toContain(`oauth2.privateKeyPath: `);
    expect(err.message).toContain(String(cfg.privateKeyPath));
    return err as CiAuthError;
  }

  /** A key that was read but cannot be used: the message says so, with the conversion hint. */
  async function unusableKeyError(cfg: OAuth2Config): Promise<CiAuthError> {
    const err = await configError(cfg);
    expect(err.message).toContain(`${cfg.privateKeyPath} is not a usable PKCS#8 PEM private key (`);
    expect(err.message).toContain("openssl pkcs8 -topk8 -nocrypt");
    return err;
  }

  it("the key file is private (0600)", async () => {
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
  });

  it("authenticates ci-pkjwt with the key file and its kid (alg inferred: ES256)", async () => {
    expect(await grantOnce(pkjwt(keyPath, { privateKeyId: world.idp.privateKeyKid }))).toMatchObject({
      clientId: IDP_CLIENTS.privateKeyJwt,
      ok: true,
    });
  });

  it("authenticates with an explicit privateKeyAlg and no kid", async () => {
    expect(await grantOnce(pkjwt(keyPath, { privateKeyAlg: "ES256" }))).toMatchObject({ clientId: IDP_CLIENTS.privateKeyJwt, ok: true });
  });

  it("a valid key the IdP does not know is refused by the IdP as invalid_client (not a config error)", async () => {
    const { privateKey } = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const other = join(dir, "unknown.pem");
    await writeFile(other, privateKey, { mode: 0o600 });
    const cfg = pkjwt(other, { privateKeyId: world.idp.privateKeyKid });
    const configuration = await createGrantClient(PROVIDER, cfg);
    const err = await rejectionOf(
      requestAccessToken(configuration, cfg, await world.ci.mint({ aud: world.idp.issuer }), { providerId: PROVIDER }),
    );
    expect(err).toBeInstanceOf(GrantRefusedError);
    expect(err).toMatchObject({ error: "invalid_client", providerId: PROVIDER });
    expect(world.idp.grants.at(-1)).toMatchObject({ clientId: IDP_CLIENTS.privateKeyJwt, ok: false, error: "invalid_client" });
    expectNoLeak([err.message, String(err)], await keyMaterial(other));
  });

  it("a garbage key file: config error naming the file, without its content", async () => {
    const path = join(dir, "garbage.pem");
    await writeFile(path, `not a key ${"0123456789abcdefGHIJKLMNOPqrstuvwxyz".repeat(3)}\n`, { mode: 0o600 });
    const err = await unusableKeyError(pkjwt(path));
    expectNoLeak([err.message, String(err), inspect(err, { depth: 5 })], await keyMaterial(path));
  });

  it('a real key in the wrong format (SEC1 "EC PRIVATE KEY"): config error without key material', async () => {
    const { privateKey } = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      privateKeyEncoding: { type: "sec1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const path = join(dir, "sec1.pem");
    await writeFile(path, privateKey, { mode: 0o600 });
    const secrets = await keyMaterial(path);
    expect(secrets.length).toBeGreaterThan(0);
    const err = await unusableKeyError(pkjwt(path));
    expectNoLeak([err.message, String(err), inspect(err, { depth: 5 })], secrets);
  });

  it("an alg that does not fit the key (RS256 for an EC key): config error without key material", async () => {
    const err = await unusableKeyError(pkjwt(keyPath, { privateKeyAlg: "RS256" }));
    expectNoLeak([err.message, String(err), inspect(err, { depth: 5 })], await keyMaterial(keyPath));
  });

  it("a missing key file: config error naming the path and ENOENT", async () => {
    const path = join(dir, "does-not-exist.pem");
    const err = await configError(pkjwt(path));
    expect(err.message).toContain(`cannot read ${path} (ENOENT)`);
    // A file that was never read gets no advice about key formats.
    expect(err.message).not.toContain("openssl");
  });

  it.each([
    [
      "an RSA-PSS-typed key",
      () =>
        generateKeyPairSync("rsa-pss", {
          modulusLength: 2048,
          privateKeyEncoding: { type: "pkcs8", format: "pem" },
          publicKeyEncoding: { type: "spki", format: "pem" },
        }).privateKey,
      /unsupported key type rsa-pss .*privateKeyAlg to PS256/,
    ],
    [
      "an EC key on secp256k1",
      () =>
        generateKeyPairSync("ec", {
          namedCurve: "secp256k1",
          privateKeyEncoding: { type: "pkcs8", format: "pem" },
          publicKeyEncoding: { type: "spki", format: "pem" },
        }).privateKey,
      /unsupported key type ec on curve secp256k1/,
    ],
  ])("%s is refused by name, without key material", async (_label, make, reason) => {
    const path = join(dir, `unsupported-${randomUUID()}.pem`);
    await writeFile(path, make(), { mode: 0o600 });
    const err = await unusableKeyError(pkjwt(path));
    expect(err.message).toMatch(reason);
    expectNoLeak([err.message, String(err)], await keyMaterial(path));
  });

  it("a directory instead of a file: config error with EISDIR", async () => {
    const path = join(dir, "a-directory");
    await mkdir(path);
    const err = await configError(pkjwt(path));
    expect(err.message).toContain(`cannot read ${path} (EISDIR)`);
  });
});
