/**
 * Hostile or broken servers cannot stall or flood the plugin: every body it reads is read up to a limit and the rest
 * is dropped, and the scrubbing of what is quoted runs in linear time. Each case points one part of the chain (a CI
 * token service, the IdP's discovery and token endpoint, the provider's 401, `/models`) at a loopback server that
 * answers 10 MB, or 1 MB built to make a backtracking scrubber crawl, and checks that the failure arrives within the
 * configured timeout plus a margin, with a clear message, and that the server could not finish sending.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { oauth2Schema } from "../src/config/schema.js";
import { createGrantClient } from "../src/grant/client.js";
import { requestAccessToken } from "../src/grant/grant.js";
import { discoverModels } from "../src/hooks/model-discovery.js";
import { createProviderFetch } from "../src/hooks/provider-fetch.js";
import { TokenProvider } from "../src/token-provider.js";
import { createSubjectTokenSource } from "../src/subject-token/sources.js";
import { startCiIssuer, type CiIssuer } from "./support/ci-issuer.js";
import { captureLogger, rejectionOf } from "./support/harness.js";
import { IDP_CLIENTS } from "./support/idp.js";
import { startWorld, type World } from "./support/world.js";

const TIMEOUT_S = 2;
/** Generous on purpose: a shared 2-core CI runner can be slow; without the limits these cases take 10 s or hang. */
const MARGIN_MS = 4_000;
const TEN_MB = 10 * 1024 * 1024;

interface Hostile {
  origin: string;
  /** The next answers: status, headers, and a body of `size` bytes made by repeating `unit`. */
  answer(a: { status: number; headers?: Record<string, string>; unit: string; size: number }): void;
  /** Whether the last answer was sent to the end (false: the client hung up first). */
  lastFinished(): Promise<boolean>;
  close(): Promise<void>;
}

async function startHostile(): Promise<Hostile> {
  let current = { status: 200, headers: {} as Record<string, string>, unit: "x", size: 0 };
  let last: Promise<boolean> = Promise.resolve(true);
  const server = createServer((req, res: ServerResponse) => {
    req.resume();
    const { status, headers, unit, size } = current;
    res.writeHead(status, { "content-type": "application/json", ...headers });
    const chunk = Buffer.from(unit.repeat(Math.max(1, Math.floor(16_384 / unit.length))));
    let sent = 0;
    last = new Promise<boolean>((resolve) => {
      res.on("finish", () => resolve(true));
      res.on("close", () => resolve(res.writableFinished));
    });
    const pump = () => {
      while (sent < size) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += piece.length;
        if (!res.write(piece)) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    answer(a) {
      current = { headers: {}, ...a };
    },
    lastFinished: () => last,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One long run of `eyJ` without a dot: the shape that made the old, backtracking scrubber quadratic. */
const ADVERSARIAL_UNIT = "eyJ";

let hostile: Hostile;
let ci: CiIssuer;

beforeAll(async () => {
  hostile = await startHostile();
  ci = await startCiIssuer();
});
afterAll(async () => {
  await hostile?.close();
  await ci?.close();
});

async function timed<T>(work: Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now();
  const result = await work;
  return { ms: performance.now() - started, result };
}

const context = (env: NodeJS.ProcessEnv = {}) => ({ providerId: "miaou", env, fetch: globalThis.fetch, timeoutMs: TIMEOUT_S * 1000 });

function urlSource() {
  return createSubjectTokenSource(
    oauth2Schema.parse({
      issuer: "https://idp.example.com",
      clientId: "c",
      subjectTokenSource: { type: "url", url: `${hostile.origin}/token` },
    }).subjectTokenSource,
  );
}

describe("CI token services", () => {
  it("a 10 MB error body: the failure arrives within the timeout, quoting at most 200 characters", async () => {
    hostile.answer({ status: 500, unit: "server trouble ", size: TEN_MB });
    const { ms, result: err } = await timed(rejectionOf(urlSource().getSubjectToken(context())));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toMatch(/the token URL at http:\/\/127\.0\.0\.1:\d+ answered HTTP 500: (server trouble ){13}serve…$/);
    expect(await hostile.lastFinished()).toBe(false);
  });

  it("a 1 MB adversarial error body: scrubbed in linear time, within the timeout", async () => {
    hostile.answer({ status: 503, unit: ADVERSARIAL_UNIT, size: 1024 * 1024 });
    const { ms, result: err } = await timed(rejectionOf(urlSource().getSubjectToken(context())));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toMatch(/answered HTTP 503: \[redacted\]$/);
  });

  it("a 10 MB answer with status 200 is not a token: refused after 64 KiB, the rest unread", async () => {
    hostile.answer({ status: 200, unit: "x", size: TEN_MB });
    const { ms, result: err } = await timed(rejectionOf(urlSource().getSubjectToken(context())));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toMatch(
      /url subject token: the token URL at http:\/\/127\.0\.0\.1:\d+ answered more than 64 KiB, which is not a token; the rest was not read\.$/,
    );
    expect(await hostile.lastFinished()).toBe(false);
  });

  it("GitHub: a 10 MB answer from the token service is refused the same way", async () => {
    hostile.answer({ status: 200, unit: '{"value":"', size: TEN_MB });
    const source = createSubjectTokenSource({ type: "github_actions", audience: "x" });
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${hostile.origin}/gh?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-0123456789abcdefABCDEF",
    };
    const { ms, result: err } = await timed(rejectionOf(source.getSubjectToken(context(env))));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toContain("the GitHub token service at");
    expect(err.message).toContain("answered more than 64 KiB, which is not a token; the rest was not read.");
  });

  it("a token that straddles the 200-character cut is redacted whole, not shown in part", async () => {
    const opaque = "Zq7" + "k9XwP2mB4vL8nR3tY6".repeat(3);
    hostile.answer({ status: 400, unit: `${"e".repeat(190)} ${opaque} tail`, size: 190 + 1 + opaque.length + 5 });
    const err = await rejectionOf(urlSource().getSubjectToken(context()));
    expect(err.message).toMatch(/answered HTTP 400: e{190} \[redacted…$/);
    // Not even the token's first characters, which a cut-then-scrub would have shown.
    expect(err.message).not.toContain(opaque.slice(0, 8));
  });
});

describe("the IdP", () => {
  it("a 10 MB discovery document fails as too large, within the timeout", async () => {
    hostile.answer({ status: 200, unit: " ", size: TEN_MB });
    const config = oauth2Schema.parse({
      issuer: `${hostile.origin}/realms/x`,
      clientId: "c",
      timeoutSeconds: TIMEOUT_S,
      subjectTokenSource: { type: "env", var: "T" },
    });
    const { ms, result: err } = await timed(rejectionOf(createGrantClient("miaou", config)));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toContain(
      "the answer is larger than 64 KiB, which is not a discovery document; the rest was not read. Check the issuer URL.",
    );
    expect(await hostile.lastFinished()).toBe(false);
  });

  it.each([
    [400, /jwt_bearer grant: the token endpoint at http:\/\/127\.0\.0\.1:\d+\/token answered HTTP 400 without an OAuth error\.$/],
    [
      200,
      /unusable token response: the token endpoint at http:\/\/127\.0\.0\.1:\d+\/token answered more than 64 KiB, which is not a token response; the rest was not read\./,
    ],
  ])("a 10 MB answer with status %i from the token endpoint fails within the timeout, unread past the limit", async (status, message) => {
    hostile.answer({ status, unit: " ", size: TEN_MB });
    const config = oauth2Schema.parse({
      tokenEndpoint: `${hostile.origin}/token`,
      clientId: "c",
      timeoutSeconds: TIMEOUT_S,
      subjectTokenSource: { type: "env", var: "T" },
    });
    const configuration = await createGrantClient("miaou", config);
    const subject = await ci.mint({ aud: "x" });
    const { ms, result: err } = await timed(rejectionOf(requestAccessToken(configuration, config, subject, { providerId: "miaou" })));
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toMatch(message);
    expect(await hostile.lastFinished()).toBe(false);
  });
});

describe("the provider", () => {
  let world: World;
  let tokens: TokenProvider;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(async () => {
    await world?.close();
  });
  beforeEach(() => {
    // A real token from the loopback IdP: the hostile server stands where the model provider would be.
    const config = oauth2Schema.parse({
      issuer: world.idp.issuer,
      clientId: IDP_CLIENTS.none,
      subjectTokenSource: { type: "github_actions", audience: world.idp.issuer },
    });
    tokens = new TokenProvider("miaou", config, {
      env: { ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken },
      logger: captureLogger("silent").logger,
    });
  });

  it("a 10 MB 401 body: the provider's words are quoted from its first 64 KiB, within the timeout", async () => {
    hostile.answer({ status: 401, unit: "denied ", size: TEN_MB });
    const fetch = createProviderFetch({ providerId: "miaou", tokenProvider: tokens }, captureLogger("silent").logger);
    const { ms, result: err } = await timed(
      rejectionOf(
        fetch(`${hostile.origin}/v1/chat/completions`, { method: "POST", body: "{}", signal: AbortSignal.timeout(TIMEOUT_S * 1000) }),
      ),
    );
    expect(ms).toBeLessThan(TIMEOUT_S * 1000 + MARGIN_MS);
    expect(err.message).toMatch(/The provider said: (denied ){42}denied…$/);
  });

  it("a 10 MB model list: discovery gives up after 4 MiB, within the timeout", async () => {
    hostile.answer({ status: 200, unit: '{"id":"m"},', size: TEN_MB });
    const log = captureLogger("info");
    const fetch = createProviderFetch({ providerId: "miaou", tokenProvider: tokens }, log.logger);
    const { ms, result: ids } = await timed(discoverModels("miaou", `${hostile.origin}/v1`, fetch, log.logger));
    expect(ms).toBeLessThan(15_000 + MARGIN_MS);
    expect(ids).toEqual([]);
    expect(log.text()).toContain(
      "answered more than 4 MiB; the rest was not read. List the models in provider.miaou.models to skip discovery.",
    );
    expect(await hostile.lastFinished()).toBe(false);
  });
});
