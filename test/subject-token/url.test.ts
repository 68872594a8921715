/**
 * UrlSource against a scripted endpoint on loopback, built through the schema and parseOAuth2Block from a block
 * whose `{env:VAR}` in headers was substituted as opencode does when it reads the file.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { parseOAuth2Block } from "../../src/config/parse.js";
import { SubjectTokenRequestError, type CiAuthError } from "../../src/errors.js";
import { createSubjectTokenSource } from "../../src/subject-token/sources.js";
import type { SubjectTokenContext, SubjectTokenSource } from "../../src/subject-token/source.js";
import { readField } from "../../src/subject-token/json-token-field.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { asOpencodeReadsIt, fp, rejectionOf } from "../support/harness.js";
import { startTokenEndpoint, type TokenEndpoint } from "../support/token-endpoint.js";

const SERVICE_TOKEN = "token-service-credential-0123456789ABCDEFabcdef";

let ci: CiIssuer;
let endpoint: TokenEndpoint;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  endpoint = await startTokenEndpoint();
  token = await ci.mint({ aud: "api://x" });
});

afterAll(async () => {
  await endpoint?.close();
  await ci?.close();
});

beforeEach(() => {
  endpoint.answer(() => ({ status: 200, body: `${token}\n` }));
});

/** A url source from a config block, with `{env:…}` substituted from `env`. */
function urlSource(source: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): SubjectTokenSource {
  const block = {
    issuer: "https://auth.example.com",
    clientId: "c",
    subjectTokenSource: { type: "url", url: `${endpoint.origin}/token`, ...source },
  };
  const parsed = parseOAuth2Block("miaou", asOpencodeReadsIt(block, env), {});
  if (!parsed.ok) throw new Error(parsed.error.message);
  return createSubjectTokenSource(parsed.config.subjectTokenSource);
}

const context = (timeoutMs = 5000): SubjectTokenContext => ({ providerId: "miaou", env: {}, fetch: globalThis.fetch, timeoutMs });

describe("UrlSource", () => {
  it("text: the body is the token; headers are sent with {env:VAR} substituted", async () => {
    const source = urlSource({ headers: { Authorization: "Bearer {env:TOKEN_SERVICE}", "X-Job": "ci" } }, { TOKEN_SERVICE: SERVICE_TOKEN });
    expect(source.type).toBe("url");
    expect(fp(await source.getSubjectToken(context()))).toBe(fp(token));
    const req = endpoint.requests.at(-1);
    expect(req?.method).toBe("GET");
    expect(req?.path).toBe("/token");
    expect(fp(req?.headers.authorization)).toBe(fp(`Bearer ${SERVICE_TOKEN}`));
    expect(req?.headers["x-job"]).toBe("ci");
  });

  it("json: the token is at `field`, a dotted path reaching into objects", async () => {
    endpoint.answer(() => ({
      status: 200,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ data: { token }, "a.b": token }),
    }));
    expect(fp(await urlSource({ format: "json", field: "data.token" }).getSubjectToken(context()))).toBe(fp(token));
    expect(fp(await urlSource({ format: "json", field: "a.b" }).getSubjectToken(context()))).toBe(fp(token));
    expect(endpoint.requests.at(-1)?.headers.accept).toBe("application/json");
    await urlSource({ format: "json", field: "data.token", headers: { ACCEPT: "application/vnd.tokens+json" } }).getSubjectToken(context());
    expect(endpoint.requests.at(-1)?.headers.accept).toBe("application/vnd.tokens+json");
  });

  it("json: a missing or non-string field, or a body that is not JSON, is an error that quotes no value", async () => {
    endpoint.answer(() => ({ status: 200, body: JSON.stringify({ data: { token: 42 }, secret: token }) }));
    const wrongType = (await rejectionOf(urlSource({ format: "json", field: "data.token" }).getSubjectToken(context()))) as CiAuthError;
    expect(wrongType.reason).toBe(
      `url subject token: the field "data.token" of the JSON answer from the token URL (${endpoint.origin}) is a number, not a string. Set field to the name of the field that holds the token.`,
    );
    const missing = (await rejectionOf(urlSource({ format: "json", field: "value" }).getSubjectToken(context()))) as CiAuthError;
    expect(missing.reason).toMatch(
      /the field "value" of the JSON answer from the token URL \(http:\/\/127\.0\.0\.1:\d+\) is missing\. Set field/,
    );
    expect(missing.message.includes(token)).toBe(false);

    endpoint.answer(() => ({ status: 200, body: token }));
    const notJson = (await rejectionOf(urlSource({ format: "json", field: "value" }).getSubjectToken(context()))) as CiAuthError;
    expect(notJson.reason).toBe(
      `url subject token: the token URL at ${endpoint.origin} did not answer JSON (format is "json"); use format "text" if the body is the token itself.`,
    );
    expect(notJson.message.includes(token)).toBe(false);
  });

  it("never follows a redirect: the headers only go to the configured URL", async () => {
    endpoint.answer((req) =>
      req.path === "/token" ? { status: 307, headers: { location: `${endpoint.origin}/elsewhere` } } : { status: 200, body: token },
    );
    const before = endpoint.requests.length;
    const err = (await rejectionOf(
      urlSource({ headers: { Authorization: "Bearer {env:T}" } }, { T: SERVICE_TOKEN }).getSubjectToken(context()),
    )) as CiAuthError;
    expect(err.reason).toBe(
      `url subject token: the token URL at ${endpoint.origin} answered a redirect (HTTP 307), which is not followed: the headers are only sent to the configured url; configure the final URL.`,
    );
    expect(endpoint.requests.length).toBe(before + 1);
  });

  it("classifies failures: 5xx and timeouts are transient, 4xx are not; messages show the origin, never the query or headers", async () => {
    endpoint.answer(() => ({ status: 502, body: "bad gateway" }));
    const source = urlSource({
      url: `${endpoint.origin}/token?key=${SERVICE_TOKEN}`,
      headers: { Authorization: `Bearer ${SERVICE_TOKEN}` },
    });
    const bad = (await rejectionOf(source.getSubjectToken(context()))) as CiAuthError;
    expect(bad).toBeInstanceOf(SubjectTokenRequestError);
    expect(bad.transient).toBe(true);
    expect(bad.message.includes(SERVICE_TOKEN)).toBe(false);

    endpoint.answer(() => ({ status: 403, body: "forbidden" }));
    const refused = (await rejectionOf(source.getSubjectToken(context()))) as CiAuthError;
    expect(refused.reason).toBe(`url subject token: the token URL at ${endpoint.origin} answered HTTP 403: forbidden`);
    expect(refused.transient).toBe(false);

    endpoint.answer(() => ({ status: 200, body: "eyJhbGci", stallAfterHeaders: true }));
    const slow = (await rejectionOf(source.getSubjectToken(context(300)))) as CiAuthError;
    expect(slow.reason).toBe(`url subject token: the token URL at ${endpoint.origin} did not answer within 0.3s.`);
    expect(slow.transient).toBe(true);
  });

  it("an empty text body is an error", async () => {
    endpoint.answer(() => ({ status: 200, body: "  \n" }));
    expect(((await rejectionOf(urlSource({}).getSubjectToken(context()))) as CiAuthError).reason).toBe(
      `url subject token: the token URL at ${endpoint.origin} answered an empty body.`,
    );
  });

  it("has no cache identity: a URL does not identify a job", async () => {
    expect(await urlSource({}).cacheIdentity(context())).toBeUndefined();
  });
});

describe("readField", () => {
  it("prefers an exact key, then walks a dotted path; inherited properties do not count", () => {
    expect(readField({ "a.b": 1, a: { b: 2 } }, "a.b")).toBe(1);
    expect(readField({ a: { b: 2 } }, "a.b")).toBe(2);
    expect(readField({ a: "x" }, "a.length")).toBeUndefined();
    expect(readField({}, "constructor")).toBeUndefined();
    expect(readField(null, "a")).toBeUndefined();
  });
});
