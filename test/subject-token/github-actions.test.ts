/**
 * GitHubActionsSource against the fake CI issuer on loopback (GitHub-style `requestUrl`/`requestToken`),
 * plus tiny scripted loopback servers for answers the fake issuer never gives.
 * Tokens are compared by identity only, so a failure never prints one.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { CiAuthError, SubjectTokenRequestError, SubjectTokenUnavailableError } from "../../src/errors.js";
import { GitHubActionsSource } from "../../src/subject-token/github-actions.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";

const PROVIDER = "miaou";
const AUDIENCE = "https://auth.example.com/realms/acme";
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

let ci: CiIssuer;
let dir: string;
/** Secrets used by any test; no error message may contain one. */
const extraSecrets: string[] = [];

beforeAll(async () => {
  ci = await startCiIssuer();
  dir = await mkdtemp(join(tmpdir(), "gha-source-"));
});

afterAll(async () => {
  await ci?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  ci.claims = {};
  ci.failNextRequests(0);
});

function githubEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { GITHUB_ACTIONS: "true", ACTIONS_ID_TOKEN_REQUEST_URL: ci.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.requestToken, ...extra };
}

/** A fetch that counts calls and otherwise is the real one. */
function countingFetch(): { fetch: typeof globalThis.fetch; calls: () => number } {
  let calls = 0;
  return {
    fetch: (input, init) => {
      calls += 1;
      return globalThis.fetch(input, init);
    },
    calls: () => calls,
  };
}

function context(env: NodeJS.ProcessEnv, extra: Partial<SubjectTokenContext> = {}): SubjectTokenContext {
  return { providerId: PROVIDER, env, fetch: globalThis.fetch, timeoutMs: 10_000, ...extra };
}

async function rejectionOf(promise: Promise<unknown>): Promise<CiAuthError> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected the source to fail, it produced a token");
  expect(outcome.err).toBeInstanceOf(CiAuthError);
  return outcome.err as CiAuthError;
}

/** No token, request token or JWT-shaped text in the message. Reports which check failed, never the secret. */
function expectNoSecrets(err: Error): void {
  const text = `${err.message}\n${err.stack ?? ""}`;
  expect(text.includes(ci.requestToken), "message contains the request token").toBe(false);
  expect(
    ci.tokensIssued.some((t) => text.includes(t)),
    "message contains an issued JWT",
  ).toBe(false);
  expect(
    extraSecrets.some((s) => text.includes(s)),
    "message contains a test secret",
  ).toBe(false);
  expect(JWT_SHAPE.test(text), "message contains something JWT-shaped").toBe(false);
}

function tokenRequests() {
  return ci.requests.filter((r) => r.path === "/_apis/token");
}

/** A loopback server with a scripted answer. */
async function scriptedServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/_apis/token?api-version=2.0`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json" });
  res.end(text);
}

describe("GitHubActionsSource: fetching a token", () => {
  it("exposes its type and expected audience", () => {
    const source = new GitHubActionsSource(AUDIENCE);
    expect(source.type).toBe("github_actions");
    expect(source.expectedAudience).toBe(AUDIENCE);
    expect(new GitHubActionsSource(undefined).expectedAudience).toBeUndefined();
  });

  it("returns a fresh token minted for the configured audience", async () => {
    const before = tokenRequests().length;
    const token = await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv()));
    expect(tokenRequests().length).toBe(before + 1);
    expect(token === ci.tokensIssued.at(-1)).toBe(true);
    const claims = decodeJwt(token);
    expect(claims.aud).toBe(AUDIENCE);
    expect(claims.iss).toBe(ci.issuer);
  });

  it("adds the audience to the URL's existing query: api-version=2.0 is preserved", async () => {
    await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv()));
    expect(tokenRequests().at(-1)?.query).toEqual({ "api-version": "2.0", audience: AUDIENCE });
  });

  it("keeps every other existing query parameter too", async () => {
    await new GitHubActionsSource(AUDIENCE).getSubjectToken(
      context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: `${ci.requestUrl}&runId=42` })),
    );
    expect(tokenRequests().at(-1)?.query).toEqual({ "api-version": "2.0", runId: "42", audience: AUDIENCE });
  });

  it("encodes an audience with reserved characters so the service receives it intact", async () => {
    const audience = "api://acme?tenant=a&b=c d#frag";
    const token = await new GitHubActionsSource(audience).getSubjectToken(context(githubEnv()));
    expect(tokenRequests().at(-1)?.query).toEqual({ "api-version": "2.0", audience });
    expect(decodeJwt(token).aud).toBe(audience);
  });

  it("without a configured audience, asks for none and gets GitHub's default", async () => {
    const token = await new GitHubActionsSource(undefined).getSubjectToken(context(githubEnv()));
    const query = tokenRequests().at(-1)?.query ?? {};
    expect(query).toEqual({ "api-version": "2.0" });
    const claims = decodeJwt(token);
    expect(claims.aud).toBe(`https://github.com/${String(claims.repository_owner)}`);
  });

  it("sends the request token as a bearer Authorization header", async () => {
    await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv()));
    const auth = tokenRequests().at(-1)?.authorization;
    expect(auth === `Bearer ${ci.requestToken}`, "Authorization is Bearer <requestToken>").toBe(true);
  });

  it("mints a new token on every call (never caches)", async () => {
    const source = new GitHubActionsSource(AUDIENCE);
    const a = await source.getSubjectToken(context(githubEnv()));
    const b = await source.getSubjectToken(context(githubEnv()));
    expect(a === b).toBe(false);
    expect(decodeJwt(a).jti).not.toBe(decodeJwt(b).jti);
  });

  it("reads the environment it is given, not process.env", async () => {
    expect(process.env.ACTIONS_ID_TOKEN_REQUEST_URL === ci.requestUrl).toBe(false);
    const token = await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv()));
    expect(decodeJwt(token).iss).toBe(ci.issuer);
  });

  it("uses the fetch it is given", async () => {
    const counting = countingFetch();
    await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv(), { fetch: counting.fetch }));
    expect(counting.calls()).toBe(1);
  });
});

describe("GitHubActionsSource: missing permission and fork pull requests", () => {
  const PERMISSION = "permissions: id-token: write";

  async function eventFile(name: string, payload: unknown): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, typeof payload === "string" ? payload : JSON.stringify(payload));
    return path;
  }

  // Shaped like GitHub's `pull_request` webhook payloads (the parts the check reads, plus enough around them).
  const forkEvent = {
    action: "opened",
    number: 7,
    pull_request: {
      number: 7,
      head: { ref: "patch-1", label: "mallory:patch-1", repo: { id: 900001, full_name: "mallory/app", fork: true } },
      base: { ref: "main", label: "acme:main", repo: { id: 100001, full_name: "acme/app", fork: false } },
    },
    repository: { id: 100001, full_name: "acme/app", fork: false },
  };
  const sameRepoEvent = {
    action: "opened",
    number: 8,
    pull_request: {
      number: 8,
      head: { ref: "feature", label: "acme:feature", repo: { id: 100001, full_name: "acme/app", fork: false } },
      base: { ref: "main", label: "acme:main", repo: { id: 100001, full_name: "acme/app", fork: false } },
    },
    repository: { id: 100001, full_name: "acme/app", fork: false },
  };
  /** Between two branches of a repository that is itself a fork: `fork` is true on both sides, and it is no fork pull request. */
  const insideAForkEvent = {
    action: "opened",
    number: 3,
    pull_request: {
      number: 3,
      head: { ref: "feature", label: "mallory:feature", repo: { id: 900001, full_name: "mallory/app", fork: true } },
      base: { ref: "main", label: "mallory:main", repo: { id: 900001, full_name: "mallory/app", fork: true } },
    },
    repository: { id: 900001, full_name: "mallory/app", fork: true },
  };
  /** The fork was deleted after the pull request was opened: GitHub sends `head.repo: null`. */
  const deletedForkEvent = {
    action: "synchronize",
    number: 9,
    pull_request: {
      number: 9,
      head: { ref: "patch-2", label: "mallory:patch-2", repo: null },
      base: { ref: "main", repo: { id: 100001, full_name: "acme/app", fork: false } },
    },
  };
  /** From one fork of an upstream into another fork of it. */
  const forkToForkEvent = {
    pull_request: {
      head: { repo: { id: 900002, full_name: "eve/app", fork: true } },
      base: { repo: { id: 900001, full_name: "mallory/app", fork: true } },
    },
  };
  /** A renamed repository: names differ between a stale and a fresh copy, the ids do not. */
  const renamedEvent = {
    pull_request: {
      head: { repo: { id: 100001, full_name: "acme/app-old", fork: false } },
      base: { repo: { id: 100001, full_name: "acme/app", fork: false } },
    },
  };

  it.each([
    ["both variables absent", {}],
    ["only the URL", { ACTIONS_ID_TOKEN_REQUEST_URL: "http://127.0.0.1:1/_apis/token?api-version=2.0" }],
    ["only the token", { ACTIONS_ID_TOKEN_REQUEST_TOKEN: "abc" }],
    ["both empty", { ACTIONS_ID_TOKEN_REQUEST_URL: "", ACTIONS_ID_TOKEN_REQUEST_TOKEN: "" }],
  ])("%s: SubjectTokenUnavailableError that names the permission and mentions forks", async (_label, env) => {
    const counting = countingFetch();
    const err = await rejectionOf(
      new GitHubActionsSource(AUDIENCE).getSubjectToken(context({ GITHUB_ACTIONS: "true", ...env }, { fetch: counting.fetch })),
    );
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.code).toBe("ERR_SUBJECT_TOKEN_UNAVAILABLE");
    expect(err.step).toBe("subject-token");
    expect(err.providerId).toBe(PROVIDER);
    expect((err as SubjectTokenUnavailableError).source).toBe("github_actions");
    expect(err.message).toContain(`provider "${PROVIDER}"`);
    expect(err.message).toContain("ACTIONS_ID_TOKEN_REQUEST_URL");
    expect(err.message).toContain(PERMISSION);
    expect(err.message).toMatch(/fork/i);
    expect(counting.calls()).toBe(0);
    expectNoSecrets(err);
  });

  it.each([
    ["from a fork", forkEvent, "pull_request"],
    ["from a fork that was deleted since (head.repo is null)", deletedForkEvent, "pull_request"],
    ["from one fork into another fork", forkToForkEvent, "pull_request"],
    ["from a fork, on pull_request_review", forkEvent, "pull_request_review"],
  ])("a pull request %s gets the fork-specific message", async (_label, payload, event) => {
    const env = {
      GITHUB_EVENT_NAME: event,
      GITHUB_EVENT_PATH: await eventFile(`fork-${event}-${payload.pull_request.head.repo?.id ?? "deleted"}.json`, payload),
    };
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toMatch(/this job runs for a pull request from a fork, and GitHub withholds OIDC tokens from those/);
    expect(err.message).not.toContain(PERMISSION);
    expectNoSecrets(err);
  });

  it.each([
    ["from a branch of the same repository", sameRepoEvent],
    ["between two branches of a repository that is itself a fork", insideAForkEvent],
    ["of a renamed repository (same id, another name)", renamedEvent],
  ])("a pull request %s gets the permission message", async (_label, payload) => {
    const env = { GITHUB_EVENT_NAME: "pull_request", GITHUB_EVENT_PATH: await eventFile(`same-${_label.length}.json`, payload) };
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
    expect(err.message).toContain(PERMISSION);
    expect(err.message).not.toMatch(/this job runs for a pull request from a fork/);
  });

  it("a fork-looking payload on a non-PR event gets the permission message", async () => {
    const env = { GITHUB_EVENT_NAME: "push", GITHUB_EVENT_PATH: await eventFile("push.json", forkEvent) };
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
    expect(err.message).toContain(PERMISSION);
  });

  it.each([
    ["missing", () => Promise.resolve(join(dir, "does-not-exist.json"))],
    ["not JSON", () => eventFile("broken.json", "{ not json")],
    ["without pull_request", () => eventFile("no-pr.json", { action: "opened" })],
    ['with fork: "true" as a string', () => eventFile("string-fork.json", { pull_request: { head: { repo: { fork: "true" } } } })],
    [
      "without the base repository",
      () => eventFile("no-base.json", { pull_request: { head: { repo: { id: 900001, full_name: "mallory/app", fork: true } } } }),
    ],
    [
      "with a null head repository but no base repository",
      () => eventFile("null-head-no-base.json", { pull_request: { head: { repo: null } } }),
    ],
    [
      "with names that are not strings",
      () => eventFile("odd-names.json", { pull_request: { head: { repo: { full_name: 1 } }, base: { repo: { full_name: 2 } } } }),
    ],
  ])("an event file that is %s falls back to the permission message", async (_label, make) => {
    const env = { GITHUB_EVENT_NAME: "pull_request", GITHUB_EVENT_PATH: await make() };
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toContain(PERMISSION);
  });

  it("fork detection only runs when the variables are missing: a fork event with variables still fetches", async () => {
    const env = githubEnv({ GITHUB_EVENT_NAME: "pull_request", GITHUB_EVENT_PATH: await eventFile("fork-ok.json", forkEvent) });
    const token = await new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env));
    expect(decodeJwt(token).aud).toBe(AUDIENCE);
  });

  // pull_request_target runs in the base repository's context, where a fork PR's job CAN get an OIDC token;
  // the fork message even recommends pull_request_target. So missing variables there mean a missing permission.
  it("pull_request_target from a fork with the variables missing gets the permission message, not the fork one", async () => {
    const env = { GITHUB_EVENT_NAME: "pull_request_target", GITHUB_EVENT_PATH: await eventFile("target-fork.json", forkEvent) };
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toContain(PERMISSION);
  });
});

describe("GitHubActionsSource: refusing to send the request token in clear text", () => {
  it.each([
    "http://token.actions.example.com/_apis/token?api-version=2.0",
    "http://10.0.0.5/_apis/token?api-version=2.0",
    "http://127.0.0.1.nip.io/_apis/token",
  ])("refuses %s before any request", async (url) => {
    const counting = countingFetch();
    const err = await rejectionOf(
      new GitHubActionsSource(AUDIENCE).getSubjectToken(
        context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: url }), { fetch: counting.fetch }),
      ),
    );
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toContain("ACTIONS_ID_TOKEN_REQUEST_URL");
    expect(err.message).toMatch(/is not https/);
    expect(err.message).toContain(new URL(url).host);
    expect(counting.calls()).toBe(0);
    expectNoSecrets(err);
  });

  it("refuses a URL that does not parse, without echoing it", async () => {
    const counting = countingFetch();
    const err = await rejectionOf(
      new GitHubActionsSource(AUDIENCE).getSubjectToken(
        context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: "not a url" }), { fetch: counting.fetch }),
      ),
    );
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.message).toMatch(/ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL/);
    expect(counting.calls()).toBe(0);
  });

  it("does not follow a redirect (the bearer would go to another host)", async () => {
    const redirector = await scriptedServer((_req, res) => {
      res.writeHead(302, { location: ci.requestUrl });
      res.end();
    });
    try {
      const before = tokenRequests().length;
      const err = await rejectionOf(
        new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: redirector.url }))),
      );
      expect(err).toBeInstanceOf(SubjectTokenRequestError);
      expect(tokenRequests().length).toBe(before);
      expectNoSecrets(err);
    } finally {
      await redirector.close();
    }
  });
});

describe("GitHubActionsSource: token service failures", () => {
  it("a wrong request token: SubjectTokenRequestError with status 401, no secret in the message", async () => {
    const wrong = randomBytes(24).toString("base64url");
    extraSecrets.push(wrong);
    const err = await rejectionOf(
      new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_TOKEN: wrong }))),
    );
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.code).toBe("ERR_SUBJECT_TOKEN_REQUEST");
    expect((err as SubjectTokenRequestError).status).toBe(401);
    expect(err.message).toMatch(/answered HTTP 401/);
    expect(tokenRequests().at(-1)?.authorization === `Bearer ${wrong}`).toBe(true);
    expectNoSecrets(err);
  });

  it.each([502, 503, 504])(
    "HTTP %i from the service: SubjectTokenRequestError with that status; the next call succeeds",
    async (status) => {
      const source = new GitHubActionsSource(AUDIENCE);
      ci.failNextRequests(1, status);
      const err = await rejectionOf(source.getSubjectToken(context(githubEnv())));
      expect(err).toBeInstanceOf(SubjectTokenRequestError);
      expect((err as SubjectTokenRequestError).status).toBe(status);
      expect(err.message).toContain(`HTTP ${status}`);
      expectNoSecrets(err);
      const token = await source.getSubjectToken(context(githubEnv()));
      expect(decodeJwt(token).aud).toBe(AUDIENCE);
    },
  );

  it("a 200 answer without a value: SubjectTokenRequestError naming the missing field", async () => {
    ci.failNextRequests(1, 200);
    const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv())));
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect((err as SubjectTokenRequestError).status).toBe(200);
    expect(err.message).toMatch(
      /the field "value" of the JSON answer from the GitHub token service \(http:\/\/127\.0\.0\.1:\d+\) is missing\.$/,
    );
  });

  it.each([
    ["not JSON", "<html>ok</html>", "did not answer JSON."],
    ["an empty value", { value: "" }, 'the field "value" of the JSON answer from the GitHub token service (<origin>) is empty.'],
    [
      "a numeric value",
      { value: 42 },
      'the field "value" of the JSON answer from the GitHub token service (<origin>) is a number, not a string.',
    ],
    ["a JSON array", "[]", 'the field "value" of the JSON answer from the GitHub token service (<origin>) is missing.'],
    ["JSON null", "null", 'the field "value" of the JSON answer from the GitHub token service (<origin>) is missing.'],
  ])("a 200 answer with %s: SubjectTokenRequestError", async (_label, body, expected) => {
    const server = await scriptedServer((_req, res) => json(res, 200, body));
    try {
      const err = await rejectionOf(
        new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: server.url }))),
      );
      expect(err).toBeInstanceOf(SubjectTokenRequestError);
      expect(err.message.endsWith(expected.replace("<origin>", new URL(server.url).origin))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("an error body that echoes the request token and a JWT is scrubbed in the message", async () => {
    const leakedJwt = await ci.mint({ aud: AUDIENCE });
    // An opaque request token as the scrubber recognises them (32+ token characters with a letter and a digit).
    const requestToken = `${randomBytes(30).toString("base64url")}a1`;
    extraSecrets.push(requestToken);
    const server = await scriptedServer((req, res) =>
      json(res, 500, { message: `rejected ${req.headers.authorization ?? ""} for ${leakedJwt}` }),
    );
    try {
      const env = githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: server.url, ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken });
      const err = await rejectionOf(new GitHubActionsSource(AUDIENCE).getSubjectToken(context(env)));
      expect(err).toBeInstanceOf(SubjectTokenRequestError);
      expect((err as SubjectTokenRequestError).status).toBe(500);
      expect(err.message).toContain("rejected Bearer [redacted]");
      expectNoSecrets(err);
    } finally {
      await server.close();
    }
  });

  it("quotes at most 200 characters of an error body", async () => {
    const body = `${"x ".repeat(150)}TAIL-MARKER`;
    const server = await scriptedServer((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(body);
    });
    try {
      const err = await rejectionOf(
        new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: server.url }))),
      );
      expect(err.message).toContain(body.slice(0, 200));
      expect(err.message).not.toContain("TAIL-MARKER");
    } finally {
      await server.close();
    }
  });

  it("an unreachable port (closed server): SubjectTokenRequestError naming the origin, cause kept", async () => {
    const closed = await scriptedServer((_req, res) => json(res, 200, {}));
    const origin = new URL(closed.url).origin;
    await closed.close();
    const err = await rejectionOf(
      new GitHubActionsSource(AUDIENCE).getSubjectToken(context(githubEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: closed.url }))),
    );
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect((err as SubjectTokenRequestError).status).toBeUndefined();
    expect(err.message).toContain(`could not reach the GitHub token service at ${origin}`);
    expect(err.message).not.toContain("api-version");
    expect(err.cause).toBeDefined();
    expectNoSecrets(err);
  });
});

describe("GitHubActionsSource.cacheIdentity (the file cache's job identity)", () => {
  const job = {
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_REPOSITORY_ID: "1",
    GITHUB_RUN_ID: "2",
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_JOB: "ai",
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-a",
  };
  const identity = (env: NodeJS.ProcessEnv, audience = "https://idp.example") =>
    new GitHubActionsSource(audience).cacheIdentity({ providerId: "miaou", env, fetch, timeoutMs: 10_000 });

  it("is stable for one job, never contains the request token, and changes with the matrix leg's credential", async () => {
    const a = await identity(job);
    expect(a).toBeDefined();
    expect(await identity({ ...job })).toBe(a);
    expect(a).not.toContain("request-token-a");
    expect(await identity({ ...job, ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-b" })).not.toBe(a);
    expect(await identity(job, "https://other.example")).not.toBe(a);
  });

  it.each(["GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITHUB_SERVER_URL"])(
    "is undefined without %s (no weaker identity)",
    async (name) => {
      const env: NodeJS.ProcessEnv = { ...job };
      delete env[name];
      expect(await identity(env)).toBeUndefined();
    },
  );
});
