/**
 * createLogger / scrub / resolveLogLevel: secrets are censored by field name, token-shaped text is scrubbed
 * from messages and string fields, and ordinary text survives. Lines are captured in memory at trace level.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  LOG_FORMAT_ENV,
  LOG_LEVEL_ENV,
  createLogger,
  formatPrettyLine,
  resolveLogFormat,
  resolveLogLevel,
  scrub,
  type LogLevel,
} from "../src/log.js";
import { startCiIssuer, type CiIssuer } from "./support/ci-issuer.js";

const CENSOR = "[redacted]";

let ci: CiIssuer;
let jwt: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  jwt = await ci.mint({ aud: "https://auth.example.com/realms/acme" });
});

afterAll(async () => {
  await ci?.close();
});

/** A logger at `level` writing into memory through pino's `{ write(s) }` destination. */
function capture(level: LogLevel = "trace") {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (s: string) => void lines.push(s) } });
  return {
    logger,
    raw: () => lines.join(""),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    last: () => JSON.parse(lines.at(-1) ?? "null") as Record<string, unknown>,
  };
}

/** A random opaque token of `length` characters, in the token alphabet, with at least one digit and one letter. */
function opaqueToken(length = 40): string {
  for (;;) {
    const t = randomBytes(length).toString("base64url").slice(0, length);
    if (/\d/.test(t) && /[A-Za-z]/.test(t)) return t;
  }
}

/** `includes` as a boolean, so a failing assertion never prints the secret. */
const leaks = (text: string, secret: string) => text.includes(secret);

describe("createLogger: secret fields are censored by name", () => {
  const SECRET_FIELDS = [
    "accessToken",
    "access_token",
    "subjectToken",
    "subject_token",
    "clientSecret",
    "client_secret",
    "assertion",
    "client_assertion",
    "authorization",
    "Authorization",
    "requestToken",
    "refresh_token",
    "id_token",
    "privateKey",
    "token",
    "value",
  ];

  it.each(SECRET_FIELDS)("%s at the top level, nested one level and nested two levels", (field) => {
    // Short, word-like secrets: the scrubber would not catch them, only the field name can.
    const top = `top-${field}-s3`;
    const one = `one-${field}-s3`;
    const two = `two-${field}-s3`;
    const { logger, raw, last } = capture();
    logger.info(
      { event: "e", [field]: top, request: { method: "POST", [field]: one }, outer: { inner: { kept: "yes", [field]: two } } },
      "with secrets",
    );
    const text = raw();
    for (const secret of [top, one, two]) expect(leaks(text, secret), `${field} leaked`).toBe(false);
    const rec = last() as { [k: string]: unknown; request: Record<string, unknown>; outer: { inner: Record<string, unknown> } };
    expect(rec[field]).toBe(CENSOR);
    expect(rec.request[field]).toBe(CENSOR);
    expect(rec.outer.inner[field]).toBe(CENSOR);
    // Siblings survive: censoring is per field, not per object.
    expect(rec.event).toBe("e");
    expect(rec.request.method).toBe("POST");
    expect(rec.outer.inner.kept).toBe("yes");
    expect(rec.msg).toBe("with secrets");
  });

  it("censors inside arrays of objects", () => {
    const { logger, raw, last } = capture();
    logger.info({ attempts: [{ accessToken: "a-first-one" }, { accessToken: "a-second-one" }] }, "attempts");
    expect(leaks(raw(), "a-first-one") || leaks(raw(), "a-second-one")).toBe(false);
    expect(last().attempts).toEqual([{ accessToken: CENSOR }, { accessToken: CENSOR }]);
  });

  it("censors in child loggers (how the plugin logs per provider)", () => {
    const { logger, raw, last } = capture();
    logger
      .child({ provider: "miaou" })
      .warn({ subjectToken: "child-secret", headers: { authorization: "Bearer child-secret-2" } }, "child");
    expect(leaks(raw(), "child-secret")).toBe(false);
    expect(last()).toMatchObject({ provider: "miaou", subjectToken: CENSOR, headers: { authorization: CENSOR }, msg: "child" });
  });

  it("writes at every level down to trace when asked, with the logger name", () => {
    const { logger, records } = capture("trace");
    logger.trace("t");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    logger.fatal("f");
    expect(records().map((r) => r.msg)).toEqual(["t", "d", "i", "w", "e", "f"]);
    expect(records().every((r) => r.name === "opencode-ci-auth")).toBe(true);
  });

  it("respects its level", () => {
    const { logger, records } = capture("warn");
    logger.info({ accessToken: "x" }, "dropped");
    logger.debug("dropped");
    logger.warn("kept");
    expect(records().map((r) => r.msg)).toEqual(["kept"]);
  });

  it("accepts a Writable stream as destination", async () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString("utf8"));
        done();
      },
    });
    const logger = createLogger({ level: "trace", destination: stream });
    logger.info({ clientSecret: "w-secret" }, `token ${jwt}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const text = chunks.join("");
    expect(text).toContain(`"msg":"token ${CENSOR}"`);
    expect(leaks(text, "w-secret") || leaks(text, jwt)).toBe(false);
  });
});

describe("createLogger: token-shaped text is scrubbed", () => {
  it("a JWT inside the message", () => {
    const { logger, raw, last } = capture();
    logger.error(`the IdP refused assertion ${jwt} for provider miaou`);
    expect(leaks(raw(), jwt)).toBe(false);
    expect(last().msg).toBe(`the IdP refused assertion ${CENSOR} for provider miaou`);
  });

  it("a JWT interpolated into the message (printf style)", () => {
    const { logger, raw, last } = capture();
    logger.info("got %s from %s", jwt, "github_actions");
    expect(leaks(raw(), jwt)).toBe(false);
    expect(last().msg).toBe(`got ${CENSOR} from github_actions`);
  });

  it("a JWT in a nested string field with an innocent name", () => {
    const { logger, raw, last } = capture();
    logger.warn({ response: { status: 400, body: `{"error":"invalid_grant","hint":"${jwt}"}` }, list: ["a", `x ${jwt}`] }, "refused");
    expect(leaks(raw(), jwt)).toBe(false);
    const rec = last() as { response: { status: number; body: string }; list: string[] };
    expect(rec.response.status).toBe(400);
    expect(rec.response.body).toBe(`{"error":"invalid_grant","hint":"${CENSOR}"}`);
    expect(rec.list).toEqual(["a", `x ${CENSOR}`]);
  });

  it("a 40-character random token inside the message and a nested field", () => {
    const opaque = opaqueToken(40);
    const { logger, raw, last } = capture();
    logger.info({ detail: { note: `used ${opaque} once` } }, `opaque access token ${opaque}.`);
    expect(leaks(raw(), opaque)).toBe(false);
    const rec = last() as { msg: string; detail: { note: string } };
    expect(rec.msg).toBe(`opaque access token ${CENSOR}.`);
    expect(rec.detail.note).toBe(`used ${CENSOR} once`);
  });

  it("a JWT without a signature part (alg none) and a bearer header value", () => {
    const [header, payload] = jwt.split(".");
    const unsigned = `${header}.${payload}.`;
    const { logger, raw, last } = capture();
    logger.info({ seen: `Authorization: Bearer ${unsigned}` }, "header");
    expect(leaks(raw(), `${header}.${payload}`)).toBe(false);
    expect(last().seen).toBe(`Authorization: Bearer ${CENSOR}`);
  });

  // The module promises that "every string value is passed through scrub … so a careless field cannot leak a
  // token, even at trace level". That must hold however deep the careless field is.
  it("a JWT in a deeply nested string field", () => {
    const { logger, raw } = capture();
    logger.error({ err: { cause: { response: { body: { error: { detail: jwt } } } } } }, "deep");
    expect(leaks(raw(), jwt), "a JWT at nesting depth 6 reached the output").toBe(false);
  });

  // pino's idiom `log.error({ err }, msg)` must keep the error's type and (scrubbed) message.
  it("an Error under err keeps its type and scrubbed message", () => {
    const { logger, raw, last } = capture();
    const err = Object.assign(new TypeError(`fetch failed for ${jwt}`), { code: "ECONNREFUSED" });
    logger.error({ err }, "failed");
    expect(leaks(raw(), jwt)).toBe(false);
    expect(last().err).toMatchObject({ type: "TypeError", message: `fetch failed for ${CENSOR}`, code: "ECONNREFUSED" });
  });
});

describe("scrub: ordinary text survives", () => {
  const KEPT = [
    "https://auth.example.com/realms/acme/protocol/openid-connect/token",
    "http://127.0.0.1:45029/token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:token-type:access_token",
    "acme/app/.github/workflows/ci.yml@refs/heads/main",
    "repo:acme/app:ref:refs/heads/main",
    "internationalization-and-localization-settings",
    "ERR_SUBJECT_TOKEN_UNAVAILABLE",
    "the IdP refused the urn:ietf:params:oauth:grant-type:jwt-bearer grant (invalid_grant: audience mismatch).",
    "expires at 2031-03-04T05:06:07Z, 300 s from now",
    'opencode-ci-auth: provider "miaou": github_actions subject token: the GitHub token service answered HTTP 401',
  ];

  it.each(KEPT)("keeps %j unchanged, in scrub and in a logged message and field", (text) => {
    expect(scrub(text)).toBe(text);
    const { logger, last } = capture();
    logger.info({ url: text }, text);
    expect(last()).toMatchObject({ msg: text, url: text });
  });

  it("keeps the words around a scrubbed token", () => {
    const opaque = opaqueToken(48);
    expect(scrub(`before ${opaque} after, then ${jwt}!`)).toBe(`before ${CENSOR} after, then ${CENSOR}!`);
  });

  it("keeps non-string values as they are", () => {
    const { logger, last } = capture();
    logger.info({ count: 3, ok: true, nothing: null, list: [1, 2] }, "values");
    expect(last()).toMatchObject({ count: 3, ok: true, nothing: null, list: [1, 2] });
  });
});

describe("resolveLogLevel", () => {
  const LEVELS: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

  it("reads the level name from the documented variable", () => {
    expect(LOG_LEVEL_ENV).toBe("OPENCODE_CI_AUTH_LOG_LEVEL");
  });

  it.each(LEVELS)("accepts %s from the environment", (level) => {
    expect(resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: level })).toBe(level);
  });

  it("is case-insensitive", () => {
    expect(resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: "DEBUG" })).toBe("debug");
    expect(resolveLogLevel("Trace", {})).toBe("trace");
  });

  it("the environment wins over the requested level", () => {
    expect(resolveLogLevel("error", { [LOG_LEVEL_ENV]: "trace" })).toBe("trace");
  });

  it("uses the requested level when the variable is unset", () => {
    expect(resolveLogLevel("debug", {})).toBe("debug");
  });

  it("defaults to warn", () => {
    expect(resolveLogLevel(undefined, {})).toBe("warn");
  });

  it.each(["verbose", "10", "warning", " ", "trace; rm -rf /"])("falls back to warn on garbage %j from the environment", (garbage) => {
    expect(resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: garbage })).toBe("warn");
  });

  it.each([42, {}, "loud"])("falls back to warn on a garbage requested level %j", (garbage) => {
    expect(resolveLogLevel(garbage, {})).toBe("warn");
  });

  it("reads the env object it is given, not process.env", () => {
    const other: LogLevel = process.env[LOG_LEVEL_ENV] === "fatal" ? "error" : "fatal";
    expect(resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: other })).toBe(other);
  });
});

describe("resolveLogFormat", () => {
  it("defaults to pretty, and takes json from the plugin option or the env var (which wins)", () => {
    expect(resolveLogFormat(undefined, {})).toBe("pretty");
    expect(resolveLogFormat("json", {})).toBe("json");
    expect(resolveLogFormat("json", { [LOG_FORMAT_ENV]: "pretty" })).toBe("pretty");
    expect(resolveLogFormat(undefined, { [LOG_FORMAT_ENV]: " JSON " })).toBe("json");
  });

  it("skips an unknown env value instead of overriding a valid option", () => {
    expect(resolveLogFormat("json", { [LOG_FORMAT_ENV]: "xml" })).toBe("json");
    expect(resolveLogFormat(undefined, { [LOG_FORMAT_ENV]: "" })).toBe("pretty");
  });
});

describe("the pretty format (formatPrettyLine, applied to each JSON line pino writes)", () => {
  it("prints time, level, name, provider, message, then the other fields as JSON", () => {
    const log = capture();
    log.logger.child({ provider: "miaou" }).warn({ event: "grant_retry", attempt: 2 }, "retrying the grant");
    log.logger.info("no provider here");
    const [first, second] = log.raw().split("\n").filter(Boolean).map(formatPrettyLine);
    expect(first).toMatch(
      /^\[\d\d:\d\d:\d\d\] WARN: opencode-ci-auth \[miaou\]: retrying the grant \{"event":"grant_retry","attempt":2\}\n$/,
    );
    expect(second).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: opencode-ci-auth: no provider here\n$/);
  });

  it("keeps an error on the same line, and secrets stay redacted", () => {
    const log = capture();
    log.logger.error({ err: new Error(`refused ${jwt}`), accessToken: jwt }, "grant failed");
    const line = formatPrettyLine(log.raw());
    expect(line.split("\n")).toHaveLength(2);
    expect(line).toContain('ERROR: opencode-ci-auth: grant failed {"err":{"type":"Error","message":"refused');
    expect(line).toContain(`"accessToken":"${CENSOR}"`);
    expect(line).not.toContain(jwt);
  });

  it("passes a line that is not JSON through unchanged, ending it with a newline", () => {
    expect(formatPrettyLine("not json")).toBe("not json\n");
    expect(formatPrettyLine("not json\n")).toBe("not json\n");
  });
});
