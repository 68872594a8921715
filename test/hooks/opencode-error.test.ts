/**
 * retrySafe / looksRetryable / toOpencodeError: our final errors must not match opencode's retry patterns
 * (it would retry a failed request ~5 times over ~60 s), while reading exactly the same to a human.
 */
import { describe, expect, it } from "vitest";

import {
  CiAuthError,
  ConfigError,
  GrantRefusedError,
  GrantRequestError,
  SubjectTokenRequestError,
  SubjectTokenUnavailableError,
} from "../../src/errors.js";
import { OPENCODE_RETRY_PATTERNS, looksRetryable, retrySafe, toOpencodeError } from "../../src/hooks/opencode-error.js";

const JOINER = "\u2060";
const visible = (s: string) => s.replaceAll(JOINER, "");

/** Messages with at least one trigger of each pattern family. */
const TRIGGERS = [
  "the GitHub token service answered HTTP 503",
  "the IdP answered HTTP 429",
  "HTTP 500 from discovery",
  "status 502, 504 and 524 seen",
  "could not reach http://127.0.0.1:45029/token",
  "could not reach http://127.0.0.1:50429/token",
  "the IdP refused the grant (server_error: temporarily unavailable)",
  "server error",
  "Internal Server Error",
  "internal_error",
  "the model is overloaded",
  "Service Unavailable",
  "service_unavailable",
  "provider returned error",
  "connect ECONNREFUSED 127.0.0.1:8080",
  "read ECONNRESET",
  "getaddrinfo ENOTFOUND auth.example.com",
  "getaddrinfo EAI_AGAIN auth.example.com",
  "ETIMEDOUT",
  "TypeError: fetch failed",
  "Failed to fetch",
  "network error",
  "network_error",
  "socket hang up",
  "upstream connect error or disconnect/reset before headers",
  "connection refused by peer",
  "the stream was terminated",
  "rate limit exceeded",
  "rate_limit_error",
  "Rate-Limit reached",
  "Too Many Requests",
  "too_many_requests",
  "request rate increased too quickly",
  "request timed out",
  "response timeout",
  "connection time out",
  "timeout",
  "TIMEOUT",
  "please try your request again",
  "retry your request",
  "resource exhausted",
  "RESOURCE_EXHAUSTED",
  "try again later",
  "try again in 30 seconds",
  "currently at capacity",
  "quota exhausted",
  "token endpoint unavailable",
  // Several triggers, some overlapping, some repeated.
  "HTTP 503 Service Unavailable: server_error, rate limit, fetch failed, ECONNREFUSED; try again later (HTTP 503)",
  "503503503 500500 unavailable unavailable unavailable",
];

describe("the trigger list is real", () => {
  it.each(TRIGGERS)("%j matches opencode's retry patterns before rewriting", (m) => {
    expect(looksRetryable(m)).toBe(true);
  });

  it("covers every pattern at least once", () => {
    for (const [i, pattern] of OPENCODE_RETRY_PATTERNS.entries()) {
      expect(
        TRIGGERS.some((m) => pattern.test(m)),
        `pattern #${i} ${String(pattern)}`,
      ).toBe(true);
    }
  });
});

describe("retrySafe", () => {
  it.each(TRIGGERS)("%j no longer looks retryable and reads the same", (m) => {
    const safe = retrySafe(m);
    expect(looksRetryable(safe)).toBe(false);
    for (const pattern of OPENCODE_RETRY_PATTERNS) expect(pattern.test(safe), String(pattern)).toBe(false);
    expect(visible(safe)).toBe(m);
    expect(safe).not.toBe(m);
  });

  it.each([
    'opencode-ci-auth: provider "miaou": gitlab subject token: the variable OPENCODE_ID_TOKEN is not set.',
    "invalid configuration (1 problem):\n  - oauth2.clientId: clientId is required",
    "the IdP refused the urn:ietf:params:oauth:grant-type:jwt-bearer grant (invalid_grant: audience mismatch).",
    "HTTP 401 Unauthorized",
    "http://127.0.0.1:45123/token",
    "",
  ])("leaves %j without triggers unchanged", (m) => {
    expect(looksRetryable(m)).toBe(false);
    expect(retrySafe(m)).toBe(m);
  });

  it("is idempotent", () => {
    for (const m of TRIGGERS) {
      const once = retrySafe(m);
      expect(retrySafe(once)).toBe(once);
    }
  });

  it("only inserts word joiners, never removes or changes a character", () => {
    for (const m of TRIGGERS) {
      const safe = retrySafe(m);
      expect([...safe].filter((c) => c !== JOINER).join("")).toBe(m);
      expect(safe.length).toBeGreaterThan(m.length);
    }
  });

  it("handles a long message with many triggers", () => {
    const m = Array.from({ length: 60 }, (_, i) => `attempt ${i}: HTTP 503 service unavailable, rate limit, ECONNRESET`).join("\n");
    const safe = retrySafe(m);
    expect(looksRetryable(safe)).toBe(false);
    expect(visible(safe)).toBe(m);
  });
});

describe("toOpencodeError", () => {
  it.each([
    [
      "SubjectTokenRequestError",
      new SubjectTokenRequestError("github_actions", "the GitHub token service answered HTTP 503: simulated token service failure", {
        providerId: "miaou",
        status: 503,
      }),
    ],
    [
      "SubjectTokenUnavailableError",
      new SubjectTokenUnavailableError("github_actions", "ACTIONS_ID_TOKEN_REQUEST_URL is not set", { providerId: "miaou" }),
    ],
    [
      "GrantRefusedError",
      new GrantRefusedError("jwt_bearer", "server_error", "temporarily unavailable", { providerId: "miaou", status: 500 }),
    ],
    [
      "GrantRequestError",
      new GrantRequestError("jwt_bearer", "could not reach http://127.0.0.1:45029/token (TypeError ECONNREFUSED)", { providerId: "miaou" }),
    ],
    ["ConfigError", new ConfigError("miaou", [{ path: "oauth2.clientId", message: "clientId is required" }])],
  ])("keeps the text of a %s, made retry-safe", (_label, err: CiAuthError) => {
    const out = toOpencodeError(err, "miaou");
    expect(out).toBeInstanceOf(Error);
    expect(out.name).toBe("OpencodeCiAuthError");
    expect(visible(out.message)).toBe(err.message);
    expect(looksRetryable(out.message)).toBe(false);
  });

  it("describes an unknown Error by class only, without its payload", () => {
    const payload = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln client_secret=hunter2";
    const out = toOpencodeError(new RangeError(payload), "miaou");
    expect(out.name).toBe("OpencodeCiAuthError");
    expect(visible(out.message)).toBe('opencode-ci-auth: provider "miaou": unexpected failure (RangeError). Please report it.');
    expect(out.message.includes("hunter2")).toBe(false);
    expect(out.message.includes("eyJ")).toBe(false);
  });

  it("names the error code and its cause's code, retry-safe", () => {
    const err = Object.assign(new TypeError("fetch failed: secret-body"), {
      cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }),
    });
    const out = toOpencodeError(err, "miaou");
    expect(visible(out.message)).toBe('opencode-ci-auth: provider "miaou": unexpected failure (TypeError ECONNREFUSED). Please report it.');
    expect(looksRetryable(out.message)).toBe(false);
    expect(out.message.includes("secret-body")).toBe(false);
  });

  it.each([
    ["a string", "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "string"],
    ["an object", { accessToken: "secret-value" }, "object"],
    ["undefined", undefined, "undefined"],
  ])("describes a thrown %s by its type only", (_label, thrown, kind) => {
    const out = toOpencodeError(thrown, "miaou");
    expect(visible(out.message)).toBe(`opencode-ci-auth: provider "miaou": unexpected failure (${kind}). Please report it.`);
    expect(out.message.includes("secret-value") || out.message.includes("eyJ")).toBe(false);
  });

  it("does not keep the original as cause (opencode may print causes)", () => {
    const out = toOpencodeError(new Error("inner secret"), "miaou");
    expect(out.cause).toBeUndefined();
  });
});
