/**
 * checkSubjectToken / summarizeClaims: local checks before a subject token is sent anywhere.
 * Tokens are real signed JWTs from the fake CI issuer; `now` is fixed so time checks are exact.
 */
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { CiAuthError, SubjectTokenInvalidError } from "../../src/errors.js";
import {
  CLOCK_SKEW_SECONDS,
  NESTED_SUMMARY_CLAIMS,
  SUMMARY_CLAIMS,
  checkSubjectToken,
  summarizeClaims,
} from "../../src/subject-token/claims.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";

const PROVIDER = "miaou";
const AUDIENCE = "https://auth.example.com/realms/acme";
/** A fixed clock: 2031-03-04T05:06:07Z. */
const NOW_S = Math.floor(Date.UTC(2031, 2, 4, 5, 6, 7) / 1000);
const NOW = NOW_S * 1000;
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

/** ISO 8601 without milliseconds, as the messages print it. */
const isoSeconds = (s: number) => new Date(s * 1000).toISOString().replace(".000Z", "Z");

let ci: CiIssuer;

beforeAll(async () => {
  ci = await startCiIssuer();
});

afterAll(async () => {
  await ci?.close();
});

const opts = (over: Partial<Parameters<typeof checkSubjectToken>[1]> = {}) => ({
  source: "github_actions",
  providerId: PROVIDER,
  expectedAudience: AUDIENCE,
  now: NOW,
  ...over,
});

function invalid(token: string, options: Parameters<typeof checkSubjectToken>[1]): SubjectTokenInvalidError {
  let thrown: unknown;
  try {
    checkSubjectToken(token, options);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, "the check should refuse the token").toBeInstanceOf(SubjectTokenInvalidError);
  const err = thrown as SubjectTokenInvalidError;
  expect(err).toBeInstanceOf(CiAuthError);
  expect(err.code).toBe("ERR_SUBJECT_TOKEN_INVALID");
  expect(err.step).toBe("subject-token");
  expect(err.providerId).toBe(options.providerId);
  expect(err.source).toBe(options.source);
  expect(err.message.startsWith(`opencode-ci-auth: provider "${options.providerId}": ${options.source} subject token: `)).toBe(true);
  // Never echo the token.
  if (token.length > 0) expect(err.message.includes(token)).toBe(false);
  expect(JWT_SHAPE.test(err.message)).toBe(false);
  return err;
}

describe("checkSubjectToken: shape", () => {
  it("accepts a valid token and returns its summary and expiry", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S - 10, expiresIn: 300 });
    const checked = checkSubjectToken(token, opts());
    expect(checked.expiresAt).toBe((NOW_S + 290) * 1000);
    expect(checked.claims.aud).toBe(AUDIENCE);
    expect(checked.claims.iss).toBe(ci.issuer);
    expect(checked.claims.exp).toBe(isoSeconds(NOW_S + 290));
  });

  it.each([
    ["plain text", "not-a-jwt"],
    ["an empty string", ""],
    ["three dots-separated garbage parts", "abc.def.ghi"],
    ["a JSON object", '{"aud":"x"}'],
    ["a bearer header", "Bearer abc.def"],
  ])("refuses %s as not a JWT, without echoing it", (_label, value) => {
    const err = invalid(value, opts());
    expect(err.message).toMatch(/the value is not a JWT/);
  });

  it("refuses a JWT whose payload is not JSON", async () => {
    const [header, , signature] = (await ci.mint({ iat: NOW_S })).split(".");
    const err = invalid(`${header}.${Buffer.from("not json").toString("base64url")}.${signature}`, opts());
    expect(err.message).toMatch(/not a JWT/);
  });

  it("refuses a five-part JWE", async () => {
    const token = await ci.mint({ iat: NOW_S });
    const err = invalid(`${token}.extra.parts`, opts({ source: "file" }));
    expect(err.message).toMatch(/not a JWT/);
  });

  it("names the source it was given", async () => {
    const err = invalid("nope", opts({ source: "gitlab", providerId: "other-provider" }));
    expect(err.message).toContain('provider "other-provider": gitlab subject token:');
  });

  it("accepts a token without exp, reporting no expiry", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S, claims: { exp: undefined } });
    expect(decodeJwt(token).exp).toBeUndefined();
    const checked = checkSubjectToken(token, opts());
    expect(checked.expiresAt).toBeUndefined();
    expect(checked.claims.exp).toBeUndefined();
  });

  it("does not check the signature (the IdP does): an untrusted-key token passes the local checks", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S, untrusted: true });
    expect(checkSubjectToken(token, opts()).claims.aud).toBe(AUDIENCE);
  });
});

describe("checkSubjectToken: time", () => {
  it("refuses an expired token; the message names the source and the ISO expiry and now", async () => {
    const exp = NOW_S - 125;
    const token = await ci.mint({ aud: AUDIENCE, iat: exp - 300, exp });
    const err = invalid(token, opts({ source: "gitlab" }));
    expect(err.message).toContain("gitlab subject token");
    expect(err.message).toContain(`the token expired at ${isoSeconds(exp)}`);
    expect(err.message).toContain(`(now ${isoSeconds(NOW_S)})`);
    expect(err.message).toMatch(/fresh token for every grant/);
  });

  it("refuses a token expiring exactly now", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S - 300, exp: NOW_S });
    expect(invalid(token, opts()).message).toContain(`expired at ${isoSeconds(NOW_S)}`);
  });

  it("accepts a token expiring one second from now", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S - 299, exp: NOW_S + 1 });
    expect(checkSubjectToken(token, opts()).expiresAt).toBe((NOW_S + 1) * 1000);
  });

  it("uses the clock it is given: the same token is valid earlier and expired later", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S, expiresIn: 300 });
    expect(() => checkSubjectToken(token, opts({ now: NOW + 299_000 }))).not.toThrow();
    invalid(token, opts({ now: NOW + 300_000 }));
  });

  it("refuses a token not valid before far in the future, naming the nbf time and the tolerated skew", async () => {
    const nbf = NOW_S + 3600;
    const token = await ci.mint({ aud: AUDIENCE, iat: nbf, expiresIn: 300 });
    expect(decodeJwt(token).nbf).toBe(nbf);
    const err = invalid(token, opts());
    expect(err.message).toContain(`not valid before ${isoSeconds(nbf)}`);
    expect(err.message).toContain(`more than ${CLOCK_SKEW_SECONDS}s behind`);
  });

  it(`accepts nbf within the ${CLOCK_SKEW_SECONDS} s skew (exactly at the limit too)`, async () => {
    for (const ahead of [1, 30, CLOCK_SKEW_SECONDS]) {
      const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S + ahead, expiresIn: 300 });
      expect(() => checkSubjectToken(token, opts()), `nbf = now + ${ahead}s`).not.toThrow();
    }
  });

  it("refuses nbf one second beyond the skew", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S + CLOCK_SKEW_SECONDS + 1, expiresIn: 300 });
    invalid(token, opts());
  });
});

describe("checkSubjectToken: audience", () => {
  it("accepts a string aud equal to the expected audience", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S });
    expect(checkSubjectToken(token, opts()).claims.aud).toBe(AUDIENCE);
  });

  it("accepts an array aud that includes the expected audience", async () => {
    const token = await ci.mint({ aud: ["https://other.example.com", AUDIENCE], iat: NOW_S });
    expect(checkSubjectToken(token, opts()).claims.aud).toEqual(["https://other.example.com", AUDIENCE]);
  });

  it("refuses a string aud that differs, quoting both audiences", async () => {
    const token = await ci.mint({ aud: "https://github.com/acme", iat: NOW_S });
    const err = invalid(token, opts());
    expect(err.message).toContain(
      `the token's audience ${JSON.stringify(["https://github.com/acme"])} does not include the configured audience "${AUDIENCE}"`,
    );
    expect(err.message).toMatch(/subjectTokenSource/);
  });

  it("refuses an array aud without the expected audience", async () => {
    const token = await ci.mint({ aud: ["a", "b"], iat: NOW_S });
    expect(invalid(token, opts()).message).toContain('["a","b"]');
  });

  it("is exact: no prefix, case or trailing-slash leniency", async () => {
    for (const aud of [`${AUDIENCE}/`, AUDIENCE.toUpperCase(), AUDIENCE.slice(0, -1)]) {
      const token = await ci.mint({ aud, iat: NOW_S });
      invalid(token, opts());
    }
  });

  it("refuses a token without aud when an audience is expected", async () => {
    const token = await ci.mint({ iat: NOW_S, claims: { aud: undefined } });
    expect(decodeJwt(token).aud).toBeUndefined();
    expect(invalid(token, opts()).message).toContain("the token's audience []");
  });

  it("skips the audience check when no audience is expected", async () => {
    const mismatched = await ci.mint({ aud: "https://github.com/acme", iat: NOW_S });
    const none = await ci.mint({ iat: NOW_S, claims: { aud: undefined } });
    expect(checkSubjectToken(mismatched, opts({ expectedAudience: undefined })).claims.aud).toBe("https://github.com/acme");
    expect(() => checkSubjectToken(none, opts({ expectedAudience: undefined }))).not.toThrow();
  });

  it("checks expiry before audience (an expired, mismatched token reports the expiry)", async () => {
    const token = await ci.mint({ aud: "wrong", iat: NOW_S - 600, exp: NOW_S - 300 });
    expect(invalid(token, opts()).message).toMatch(/expired at/);
  });
});

describe("summarizeClaims", () => {
  const allowed = new Set<string>([...SUMMARY_CLAIMS, "exp"]);

  it("keeps only the listed non-secret claims (plus exp as ISO), with their values", async () => {
    const token = await ci.mint({
      aud: AUDIENCE,
      iat: NOW_S,
      claims: { environment: "production", custom_secretish: "x", nonce: "n-123" },
    });
    const payload = decodeJwt(token);
    const summary = summarizeClaims(payload);
    for (const key of Object.keys(summary)) expect(allowed.has(key), `unexpected claim ${key}`).toBe(true);
    for (const name of SUMMARY_CLAIMS) {
      if (payload[name] !== undefined) expect(summary[name]).toEqual(payload[name]);
      else expect(summary).not.toHaveProperty(name);
    }
    expect(summary.exp).toBe(isoSeconds(payload.exp as number));
    // Identifying claims of a GitHub token are present …
    expect(summary).toMatchObject({
      iss: ci.issuer,
      aud: AUDIENCE,
      repository: "acme/app",
      ref: "refs/heads/main",
      environment: "production",
    });
    // … with the ids an IdP should pin (GitHub's immutable sub is built from them) …
    expect(summary).toMatchObject({ repository_id: "100001", repository_owner: "acme", repository_owner_id: "200001" });
    // … and the rest is not.
    for (const dropped of ["jti", "iat", "nbf", "sha", "actor", "run_id", "repository_visibility", "custom_secretish", "nonce"])
      expect(summary).not.toHaveProperty(dropped);
  });

  it("works for GitLab-style claims", async () => {
    const payload = decodeJwt(await ci.mint({ style: "gitlab", aud: AUDIENCE, iat: NOW_S }));
    const summary = summarizeClaims(payload);
    expect(summary).toMatchObject({ project_path: "acme/app", namespace_path: "acme", pipeline_source: "push", ref_type: "branch" });
    expect(summary).not.toHaveProperty("user_login");
    expect(summary).not.toHaveProperty("job_id");
  });

  it("never contains the jti, the signature or the token", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S });
    const [, , signature] = token.split(".");
    const payload = decodeJwt(token);
    const text = JSON.stringify(checkSubjectToken(token, opts()).claims);
    expect(typeof payload.jti).toBe("string");
    expect(text.includes(payload.jti as string)).toBe(false);
    expect(text.includes(signature as string)).toBe(false);
    expect(text.includes(token)).toBe(false);
    expect(JWT_SHAPE.test(text)).toBe(false);
  });

  it("the checked claims are exactly the summary of the payload", async () => {
    const token = await ci.mint({ aud: AUDIENCE, iat: NOW_S });
    expect(checkSubjectToken(token, opts()).claims).toEqual(summarizeClaims(decodeJwt(token)));
  });

  it("is empty for a payload without any listed claim", () => {
    expect(summarizeClaims({ jti: "x", foo: "bar" })).toEqual({});
  });
});

describe("summarizeClaims: the other platforms", () => {
  it("keeps the identifying claims of CircleCI, Buildkite and Bitbucket tokens", async () => {
    const claims = {
      "oidc.circleci.com/project-id": "p-1",
      "oidc.circleci.com/vcs-ref": "refs/heads/main",
      "oidc.circleci.com/context-ids": ["c-1"],
      organization_slug: "acme",
      pipeline_slug: "app",
      build_branch: "main",
      agent_id: "a-1",
      workspaceUuid: "{ws}",
      repositoryUuid: "{repo}",
      branchName: "main",
    };
    const summary = summarizeClaims(decodeJwt(await ci.mint({ style: "plain", aud: AUDIENCE, iat: NOW_S, claims })));
    expect(summary).toMatchObject({
      "oidc.circleci.com/project-id": "p-1",
      "oidc.circleci.com/vcs-ref": "refs/heads/main",
      organization_slug: "acme",
      pipeline_slug: "app",
      build_branch: "main",
      workspaceUuid: "{ws}",
      repositoryUuid: "{repo}",
      branchName: "main",
    });
    expect(summary).not.toHaveProperty("agent_id");
    expect(summary).not.toHaveProperty("oidc.circleci.com/context-ids");
  });

  it("flattens the namespace and service account of a Kubernetes token, and the project of a Google one, but nothing else of those objects", async () => {
    const claims = {
      "kubernetes.io": {
        namespace: "ci",
        serviceaccount: { name: "runner", uid: "sa-uid" },
        pod: { name: "runner-x", uid: "pod-uid" },
        node: { name: "n", uid: "u" },
      },
      google: { compute_engine: { project_id: "acme-ci", instance_id: "123", zone: "europe-west1-b" } },
    };
    const summary = summarizeClaims(decodeJwt(await ci.mint({ style: "plain", aud: AUDIENCE, iat: NOW_S, claims })));
    expect(summary).toMatchObject({
      "kubernetes.io/namespace": "ci",
      "kubernetes.io/serviceaccount": "runner",
      "google/project_id": "acme-ci",
    });
    expect(summary).not.toHaveProperty("kubernetes.io");
    expect(summary).not.toHaveProperty("google");
    expect(JSON.stringify(summary)).not.toMatch(/pod-uid|sa-uid|instance_id/);
    expect(Object.keys(NESTED_SUMMARY_CLAIMS)).toEqual(["kubernetes.io/namespace", "kubernetes.io/serviceaccount", "google/project_id"]);
  });

  it("ignores a nested claim that is an object or missing", async () => {
    const summary = summarizeClaims(
      decodeJwt(await ci.mint({ style: "plain", aud: AUDIENCE, iat: NOW_S, claims: { "kubernetes.io": { namespace: { x: 1 } } } })),
    );
    expect(summary).not.toHaveProperty("kubernetes.io/namespace");
    expect(summary).not.toHaveProperty("kubernetes.io/serviceaccount");
  });
});
