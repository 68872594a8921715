/**
 * parseOAuth2Block / parseProviders: `{env:VAR}` substitution, one ConfigIssue per problem with an
 * `oauth2.<field>` path, a ConfigError naming the provider, and providers without `oauth2` left alone.
 */
import { describe, expect, it } from "vitest";

import { parseOAuth2Block, parseProviders, type ParsedProvider } from "../../src/config/parse.js";
import { CiAuthError, ConfigError, type ConfigIssue } from "../../src/errors.js";

const PROVIDER = "miaou";

/** The block from the issue. */
const ISSUE_BLOCK = {
  issuer: "https://auth.example.com/realms/acme",
  clientId: "opencode-ci",
  scopes: ["openid"],
  authFlow: "jwt_bearer",
  subjectTokenSource: { type: "github_actions", audience: "https://auth.example.com/realms/acme" },
};

type Raw = Record<string, unknown>;

function block(overrides: Raw = {}): Raw {
  const out: Raw = structuredClone(ISSUE_BLOCK);
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

function expectOk(result: ParsedProvider) {
  if (!result.ok) throw new Error(`expected a valid block, got:\n${result.error.message}`);
  return result.config;
}

function expectError(result: ParsedProvider): ConfigError {
  expect(result.ok, "the block should be refused").toBe(false);
  if (result.ok) throw new Error("unreachable");
  expect(result.error).toBeInstanceOf(ConfigError);
  expect(result.error).toBeInstanceOf(CiAuthError);
  return result.error;
}

/** Checks the error's shape against its issues: code, provider, step, one message line per issue. */
function expectWellFormed(error: ConfigError, providerId: string): void {
  expect(error.code).toBe("ERR_CONFIG_INVALID");
  expect(error.step).toBe("config");
  expect(error.providerId).toBe(providerId);
  expect(error.message.startsWith(`opencode-ci-auth: provider "${providerId}": invalid configuration`)).toBe(true);
  const n = error.issues.length;
  expect(error.message).toContain(`(${n} problem${n === 1 ? "" : "s"})`);
  for (const issue of error.issues) {
    expect(issue.path === "oauth2" || issue.path.startsWith("oauth2.")).toBe(true);
    expect(error.message).toContain(`  - ${issue.path}: ${issue.message}`);
  }
  // One line per issue, nothing more.
  expect(error.message.split("\n").filter((l) => l.startsWith("  - "))).toHaveLength(n);
}

const paths = (issues: readonly ConfigIssue[]) => issues.map((i) => i.path);

/** An env var name that is certainly not set in this process, so a test cannot pass by reading process.env. */
function unsetName(base: string): string {
  const name = `${base}_${process.pid}_${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
  expect(process.env[name]).toBeUndefined();
  return name;
}

describe("parseOAuth2Block", () => {
  it("accepts the issue's block under provider miaou", () => {
    const result = parseOAuth2Block(PROVIDER, block(), {});
    expect(result.providerId).toBe(PROVIDER);
    const config = expectOk(result);
    expect(config.clientId).toBe("opencode-ci");
    expect(config.authFlow).toBe("jwt_bearer");
    expect(config.subjectTokenSource).toEqual({ type: "github_actions", audience: "https://auth.example.com/realms/acme" });
  });

  it.each([
    ["a string", "https://auth.example.com"],
    ["an array", [ISSUE_BLOCK]],
    ["null", null],
    ["a number", 1],
  ])("refuses %s as the block, with one issue on the path oauth2", (_label, raw) => {
    const error = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(error.issues).toEqual([{ path: "oauth2", message: "must be an object" }]);
    expectWellFormed(error, PROVIDER);
  });

  it("reports a typo (clientID) as an unknown field, next to the missing clientId", () => {
    const error = expectError(parseOAuth2Block(PROVIDER, block({ clientId: undefined, clientID: "opencode-ci" }), {}));
    expect(error.issues).toHaveLength(2);
    const unknown = error.issues.find((i) => i.path === "oauth2.clientID");
    expect(unknown?.message).toMatch(/^unknown field "clientID"/);
    expect(error.issues.find((i) => i.path === "oauth2.clientId")?.message).toBe("clientId is required");
    expectWellFormed(error, PROVIDER);
  });

  it("reports each unknown field on its own line, nested ones with their full path", () => {
    const error = expectError(
      parseOAuth2Block(PROVIDER, block({ scope: "openid", client_id: "x", subjectTokenSource: { type: "github_actions", audiance: "x" } }), {}),
    );
    expect(paths(error.issues).sort()).toEqual(["oauth2.client_id", "oauth2.scope", "oauth2.subjectTokenSource.audiance"]);
    for (const issue of error.issues) expect(issue.message).toMatch(/^unknown field "[a-z_]+"/i);
    expectWellFormed(error, PROVIDER);
  });

  it("names nested fields with dotted paths (source type, array index)", () => {
    const error = expectError(parseOAuth2Block(PROVIDER, block({ scopes: ["openid", " "], subjectTokenSource: { type: "travis" } }), {}));
    expect(paths(error.issues).sort()).toEqual(["oauth2.scopes.1", "oauth2.subjectTokenSource.type"]);
    expectWellFormed(error, PROVIDER);
  });

  it("gives one issue per problem, each naming its field, and the message lists them all", () => {
    const raw = {
      issuer: "ftp://auth.example.com",
      clientID: "opencode-ci",
      scopes: 5,
      authFlow: "magic",
      subjectTokenSource: { type: "gitlab", var: "" },
    };
    const error = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(paths(error.issues).sort()).toEqual([
      "oauth2.authFlow",
      "oauth2.clientID",
      "oauth2.clientId",
      "oauth2.issuer",
      "oauth2.scopes",
      "oauth2.subjectTokenSource.var",
    ]);
    // Each problem once.
    expect(new Set(paths(error.issues)).size).toBe(error.issues.length);
    expectWellFormed(error, PROVIDER);
    expect(error.message).toContain("(6 problems)");
  });

  it("gives one issue per cross-field problem when the fields themselves are valid", () => {
    const raw = block({ tokenEndpointAuthMethod: "client_secret_basic", tokenExchangeAudience: "models", privateKeyPath: "/k.pem" });
    const error = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(paths(error.issues).sort()).toEqual(["oauth2.clientSecret", "oauth2.privateKeyPath", "oauth2.tokenExchangeAudience"]);
    expectWellFormed(error, PROVIDER);
  });

  it("reports cross-field problems in the same pass as an unknown field", () => {
    const raw = block({ clientID: "x", tokenEndpointAuthMethod: "client_secret_post" });
    const error = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(paths(error.issues).sort()).toEqual(["oauth2.clientID", "oauth2.clientSecret"]);
  });

  // "Every zod issue becomes one line naming the provider and the field, so a user fixes all problems in one pass."
  // A field-level problem must not hide a cross-field one: otherwise the user fixes the typo, reruns the job,
  // and only then learns that client_secret_post needs a secret.
  it("reports cross-field problems in the same pass as a field-level problem", () => {
    const raw = block({ clientId: undefined, clientID: "opencode-ci", tokenEndpointAuthMethod: "client_secret_post" });
    const error = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(paths(error.issues).sort()).toEqual(["oauth2.clientID", "oauth2.clientId", "oauth2.clientSecret"]);
  });

  it("is stable: the same input gives the same issues", () => {
    const raw = block({ clientId: 1, issuer: "nope" });
    const a = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    const b = expectError(parseOAuth2Block(PROVIDER, raw, {}));
    expect(a.issues).toEqual(b.issues);
    expect(a.message).toBe(b.message);
  });
});

describe("parseOAuth2Block: {env:VAR} substitution", () => {
  it("substitutes a set variable, from the env object given (not process.env)", () => {
    const secretVar = unsetName("CI_AUTH_TEST_SECRET");
    const config = expectOk(
      parseOAuth2Block(PROVIDER, block({ clientSecret: `{env:${secretVar}}`, tokenEndpointAuthMethod: "client_secret_post" }), { [secretVar]: "from-env-secret" }),
    );
    expect(config.clientSecret).toBe("from-env-secret");
  });

  it("substitutes inside a string, in nested objects and in arrays, and trims the name", () => {
    const host = unsetName("CI_AUTH_TEST_HOST");
    const aud = unsetName("CI_AUTH_TEST_AUD");
    const scope = unsetName("CI_AUTH_TEST_SCOPE");
    const env = { [host]: "auth.example.org", [aud]: "api://acme", [scope]: "models.read" };
    const config = expectOk(
      parseOAuth2Block(
        PROVIDER,
        block({
          issuer: `https://{env:${host}}/realms/acme`,
          scopes: ["openid", `{env: ${scope} }`],
          subjectTokenSource: { type: "github_actions", audience: `{env:${aud}}` },
        }),
        env,
      ),
    );
    expect(config.issuer).toBe("https://auth.example.org/realms/acme");
    expect(config.scopes).toEqual(["openid", "models.read"]);
    expect(config.subjectTokenSource).toEqual({ type: "github_actions", audience: "api://acme" });
  });

  it("substitutes several references in one value", () => {
    const a = unsetName("CI_AUTH_TEST_A");
    const b = unsetName("CI_AUTH_TEST_B");
    const config = expectOk(parseOAuth2Block(PROVIDER, block({ clientId: `{env:${a}}-{env:${b}}` }), { [a]: "opencode", [b]: "ci" }));
    expect(config.clientId).toBe("opencode-ci");
  });

  it("an unset variable becomes empty, and the issue names the field and hints at {env:VAR}", () => {
    const secretVar = unsetName("CI_AUTH_TEST_SECRET");
    const error = expectError(parseOAuth2Block(PROVIDER, block({ clientSecret: `{env:${secretVar}}` }), {}));
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]?.path).toBe("oauth2.clientSecret");
    expect(error.issues[0]?.message).toMatch(/must not be empty/);
    expect(error.issues[0]?.message).toContain("{env:VAR}");
    expectWellFormed(error, PROVIDER);
  });

  it("an unset variable in a required nested field is reported at its path", () => {
    const audVar = unsetName("CI_AUTH_TEST_AUD");
    const error = expectError(parseOAuth2Block(PROVIDER, block({ subjectTokenSource: { type: "github_actions", audience: `{env:${audVar}}` } }), {}));
    expect(paths(error.issues)).toEqual(["oauth2.subjectTokenSource.audience"]);
  });

  it("never echoes a substituted secret in the error", () => {
    const secretVar = unsetName("CI_AUTH_TEST_SECRET");
    const secret = "sup3r-s3cret-value";
    const error = expectError(parseOAuth2Block(PROVIDER, block({ clientSecret: `{env:${secretVar}}`, tokenEndpointAuthMethod: "none", clientID: "typo" }), { [secretVar]: secret }));
    expect(paths(error.issues)).toContain("oauth2.clientID");
    expect(error.message.includes(secret)).toBe(false);
    expect(JSON.stringify(error.issues).includes(secret)).toBe(false);
  });

  it("does not modify the raw block (the {env:…} reference stays for the next parse)", () => {
    const v = unsetName("CI_AUTH_TEST_ID");
    const raw = block({ clientId: `{env:${v}}` });
    expect(expectOk(parseOAuth2Block(PROVIDER, raw, { [v]: "first" })).clientId).toBe("first");
    expect(raw.clientId).toBe(`{env:${v}}`);
    expect(expectOk(parseOAuth2Block(PROVIDER, raw, { [v]: "second" })).clientId).toBe("second");
  });

  it("leaves text without a reference alone", () => {
    const config = expectOk(parseOAuth2Block(PROVIDER, block({ clientId: "env:NOT_A_REF {env" }), {}));
    expect(config.clientId).toBe("env:NOT_A_REF {env");
  });
});

describe("parseProviders", () => {
  it("validates only providers carrying options.oauth2, and keeps their ids", () => {
    const results = parseProviders(
      {
        provider: {
          openai: { options: { apiKey: "sk-not-ours" } },
          anthropic: {},
          empty: undefined,
          [PROVIDER]: { options: { baseURL: "https://models.example.com/v1", oauth2: block() } },
          broken: { options: { oauth2: block({ clientId: undefined }) } },
        },
      },
      {},
    );
    expect(results.map((r) => r.providerId)).toEqual([PROVIDER, "broken"]);
    expect(results[0]?.ok).toBe(true);
    const broken = results[1];
    expect(broken?.ok).toBe(false);
    if (broken && !broken.ok) {
      expect(broken.error.providerId).toBe("broken");
      expect(broken.error.message).toContain('provider "broken"');
      expect(paths(broken.error.issues)).toEqual(["oauth2.clientId"]);
    }
  });

  it("returns nothing for a config without providers", () => {
    expect(parseProviders({}, {})).toEqual([]);
    expect(parseProviders({ provider: {} }, {})).toEqual([]);
  });

  it("treats an explicit null oauth2 as ours and invalid (it is not 'absent')", () => {
    const results = parseProviders({ provider: { [PROVIDER]: { options: { oauth2: null } } } }, {});
    expect(results).toHaveLength(1);
    expect(results[0]?.ok).toBe(false);
  });

  it("passes its env to every block", () => {
    const v = unsetName("CI_AUTH_TEST_CLIENT");
    const results = parseProviders({ provider: { a: { options: { oauth2: block({ clientId: `{env:${v}}` }) } }, b: { options: { oauth2: block({ clientId: `{env:${v}}` }) } } } }, { [v]: "cid" });
    expect(results.map((r) => (r.ok ? r.config.clientId : "<error>"))).toEqual(["cid", "cid"]);
  });
});
