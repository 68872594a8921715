/**
 * GitLabSource: the JWT that `id_tokens:` put in an environment variable, with a message that shows the
 * exact YAML to add when it is missing. Tokens are real JWTs from the fake CI issuer.
 */
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { gitlab } from "../../src/subject-token/gitlab.js";
import { CiAuthError, SubjectTokenUnavailableError } from "../../src/errors.js";
import { GitLabSource } from "../../src/subject-token/gitlab.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";

const PROVIDER = "miaou";
const AUDIENCE = "https://auth.example.com/realms/acme";
/** The default variable name, taken from the schema rather than repeated. */
const DEFAULT_VAR = gitlab.schema.parse({ type: "gitlab" }).var;

let ci: CiIssuer;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  token = await ci.mint({ style: "gitlab", aud: AUDIENCE });
});

afterAll(async () => {
  await ci?.close();
});

function context(env: NodeJS.ProcessEnv): SubjectTokenContext {
  return {
    providerId: PROVIDER,
    env,
    fetch: () => Promise.reject(new Error("the gitlab source must not make requests")),
    timeoutMs: 10_000,
  };
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

describe("GitLabSource", () => {
  it("the schema's default variable is OPENCODE_ID_TOKEN", () => {
    expect(DEFAULT_VAR).toBe("OPENCODE_ID_TOKEN");
  });

  it("exposes its type, variable and expected audience", () => {
    const source = new GitLabSource(DEFAULT_VAR, AUDIENCE);
    expect(source.type).toBe("gitlab");
    expect(source.variable).toBe(DEFAULT_VAR);
    expect(source.expectedAudience).toBe(AUDIENCE);
  });

  it("reads the token from the default variable", async () => {
    const value = await new GitLabSource(DEFAULT_VAR, AUDIENCE).getSubjectToken(context({ GITLAB_CI: "true", [DEFAULT_VAR]: token }));
    expect(value === token).toBe(true);
    expect(decodeJwt(value).project_path).toBe("acme/app");
  });

  it("reads a custom variable, and only that one", async () => {
    const other = await ci.mint({ style: "gitlab", aud: "other" });
    const value = await new GitLabSource("MY_ID_TOKEN", AUDIENCE).getSubjectToken(
      context({ GITLAB_CI: "true", MY_ID_TOKEN: token, [DEFAULT_VAR]: other }),
    );
    expect(value === token).toBe(true);
  });

  it("trims surrounding whitespace and newlines", async () => {
    const value = await new GitLabSource(DEFAULT_VAR, AUDIENCE).getSubjectToken(
      context({ GITLAB_CI: "true", [DEFAULT_VAR]: `  \n${token}\r\n\t` }),
    );
    expect(value === token).toBe(true);
  });

  it("reads the variable on every call (a new value is picked up)", async () => {
    const source = new GitLabSource(DEFAULT_VAR, AUDIENCE);
    const env: NodeJS.ProcessEnv = { GITLAB_CI: "true", [DEFAULT_VAR]: token };
    expect((await source.getSubjectToken(context(env))) === token).toBe(true);
    const next = await ci.mint({ style: "gitlab", aud: AUDIENCE });
    env[DEFAULT_VAR] = next;
    expect((await source.getSubjectToken(context(env))) === next).toBe(true);
  });

  it.each([
    ["unset", undefined],
    ["empty", ""],
    ["whitespace only", " \n\t "],
  ])("variable %s: SubjectTokenUnavailableError with the id_tokens snippet for that variable and audience", async (_label, value) => {
    const env: NodeJS.ProcessEnv = { GITLAB_CI: "true" };
    if (value !== undefined) env[DEFAULT_VAR] = value;
    const err = await rejectionOf(new GitLabSource(DEFAULT_VAR, AUDIENCE).getSubjectToken(context(env)));
    expect(err.code).toBe("ERR_SUBJECT_TOKEN_UNAVAILABLE");
    expect(err.providerId).toBe(PROVIDER);
    expect((err as SubjectTokenUnavailableError).source).toBe("gitlab");
    expect(err.message).toContain(`provider "${PROVIDER}": gitlab subject token:`);
    expect(err.message).toContain(`the variable ${DEFAULT_VAR} is not set`);
    expect(err.message).toContain(`id_tokens: { ${DEFAULT_VAR}: { aud: "${AUDIENCE}" } }`);
    expect(err.message).toContain("subjectTokenSource.var");
    expect(err.message).not.toContain("GITLAB_CI is not set");
  });

  it("names a custom variable in the message and snippet", async () => {
    const err = await rejectionOf(
      new GitLabSource("VAULT_ID_TOKEN", "vault.example.com").getSubjectToken(context({ GITLAB_CI: "true", [DEFAULT_VAR]: token })),
    );
    expect(err.message).toContain("the variable VAULT_ID_TOKEN is not set");
    expect(err.message).toContain('id_tokens: { VAULT_ID_TOKEN: { aud: "vault.example.com" } }');
    expect(err.message).not.toContain(DEFAULT_VAR);
  });

  it("without a configured audience, the snippet shows a placeholder", async () => {
    const err = await rejectionOf(new GitLabSource(DEFAULT_VAR, undefined).getSubjectToken(context({ GITLAB_CI: "true" })));
    expect(err.message).toContain(`id_tokens: { ${DEFAULT_VAR}: { aud: "<your IdP audience>" } }`);
  });

  it("outside GitLab CI (GITLAB_CI unset), the message says so", async () => {
    const err = await rejectionOf(new GitLabSource(DEFAULT_VAR, AUDIENCE).getSubjectToken(context({})));
    expect(err.message).toContain("this does not look like a GitLab CI job: GITLAB_CI is not set");
    expect(err.message).toContain(`id_tokens: { ${DEFAULT_VAR}:`);
  });

  it("never puts another variable's value in the message", async () => {
    const err = await rejectionOf(
      new GitLabSource("MISSING_TOKEN", AUDIENCE).getSubjectToken(context({ GITLAB_CI: "true", [DEFAULT_VAR]: token })),
    );
    expect(err.message.includes(token)).toBe(false);
  });
});
