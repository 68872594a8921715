/** EnvSource: a JWT in a named environment variable, read from the env the caller gives. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { CiAuthError, SubjectTokenUnavailableError } from "../../src/errors.js";
import { EnvSource } from "../../src/subject-token/env.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";

const PROVIDER = "miaou";

let ci: CiIssuer;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  token = await ci.mint({ style: "plain", aud: "api://acme" });
});

afterAll(async () => {
  await ci?.close();
});

function context(env: NodeJS.ProcessEnv): SubjectTokenContext {
  return { providerId: PROVIDER, env, fetch: () => Promise.reject(new Error("the env source must not make requests")), timeoutMs: 10_000 };
}

async function rejectionOf(promise: Promise<unknown>): Promise<CiAuthError> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected the source to fail, it produced a token");
  expect(outcome.err).toBeInstanceOf(SubjectTokenUnavailableError);
  return outcome.err as CiAuthError;
}

describe("EnvSource", () => {
  it("exposes its type, variable and expected audience", () => {
    const source = new EnvSource("CIRCLE_OIDC_TOKEN_V2", "api://acme");
    expect(source.type).toBe("env");
    expect(source.variable).toBe("CIRCLE_OIDC_TOKEN_V2");
    expect(source.expectedAudience).toBe("api://acme");
    expect(new EnvSource("X", undefined).expectedAudience).toBeUndefined();
  });

  it.each(["CIRCLE_OIDC_TOKEN_V2", "BITBUCKET_STEP_OIDC_TOKEN", "my_custom_token"])("reads the variable %s", async (name) => {
    const value = await new EnvSource(name, undefined).getSubjectToken(context({ [name]: token, OTHER: "x" }));
    expect(value === token).toBe(true);
  });

  it("reads only the configured variable", async () => {
    const err = await rejectionOf(new EnvSource("WANTED", undefined).getSubjectToken(context({ wanted: token, WANTED_TOKEN: token })));
    expect(err.message).toContain("WANTED");
  });

  it("trims surrounding whitespace and newlines", async () => {
    const value = await new EnvSource("T", undefined).getSubjectToken(context({ T: `\n  ${token} \r\n` }));
    expect(value === token).toBe(true);
  });

  it("reads the variable on every call", async () => {
    const source = new EnvSource("T", undefined);
    const env: NodeJS.ProcessEnv = { T: token };
    expect((await source.getSubjectToken(context(env))) === token).toBe(true);
    const next = await ci.mint({ style: "plain" });
    env.T = next;
    expect((await source.getSubjectToken(context(env))) === next).toBe(true);
    delete env.T;
    await rejectionOf(source.getSubjectToken(context(env)));
  });

  it.each([
    ["unset", undefined],
    ["empty", ""],
    ["whitespace only", "  \n "],
  ])("variable %s: SubjectTokenUnavailableError naming the variable and the config field", async (_label, value) => {
    const env: NodeJS.ProcessEnv = {};
    if (value !== undefined) env.CIRCLE_OIDC_TOKEN_V2 = value;
    const err = await rejectionOf(new EnvSource("CIRCLE_OIDC_TOKEN_V2", undefined).getSubjectToken(context(env)));
    expect(err.code).toBe("ERR_SUBJECT_TOKEN_UNAVAILABLE");
    expect(err.step).toBe("subject-token");
    expect(err.providerId).toBe(PROVIDER);
    expect((err as SubjectTokenUnavailableError).source).toBe("env");
    expect(err.message).toContain(`provider "${PROVIDER}": env subject token:`);
    expect(err.message).toContain("the variable CIRCLE_OIDC_TOKEN_V2 is not set or empty");
    expect(err.message).toContain("subjectTokenSource.var");
  });

  it("never puts a value from the environment in the message", async () => {
    const err = await rejectionOf(new EnvSource("MISSING", undefined).getSubjectToken(context({ SOMETHING_ELSE: token })));
    expect(err.message.includes(token)).toBe(false);
  });
});
