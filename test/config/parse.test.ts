/**
 * parseOAuth2Block / parseProviders: one ConfigIssue per problem with an `oauth2.<field>` path (or
 * `options.baseURL`), a ConfigError naming the provider, the job's allow-lists, values taken as they are (no second
 * `{env:VAR}` substitution), and providers without `oauth2` left alone. Runs against src/ and against the packed
 * package's `/lib`, whose zod is bundled (test/support/under-test.ts).
 */
import { describe, expect, it } from "vitest";

import type { ConfigError, ConfigIssue, ParsedProvider } from "../../src/lib.js";
import { UNDER_TEST } from "../support/under-test.js";

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

/** Checks the error's shape against its issues: code, provider, step, one message line per issue. */
function expectWellFormed(error: ConfigError, providerId: string): void {
  expect(error.code).toBe("ERR_CONFIG_INVALID");
  expect(error.step).toBe("config");
  expect(error.providerId).toBe(providerId);
  expect(error.message.startsWith(`opencode-ci-auth: provider "${providerId}": invalid configuration`)).toBe(true);
  const n = error.issues.length;
  expect(error.message).toContain(`(${n} problem${n === 1 ? "" : "s"})`);
  for (const issue of error.issues) {
    expect(issue.path === "oauth2" || issue.path.startsWith("oauth2.") || issue.path === "options.baseURL").toBe(true);
    expect(error.message).toContain(`  - ${issue.path}: ${issue.message}`);
  }
  // One line per issue, nothing more.
  expect(error.message.split("\n").filter((l) => l.startsWith("  - "))).toHaveLength(n);
}

const paths = (issues: readonly ConfigIssue[]) => issues.map((i) => i.path);

describe.each(UNDER_TEST)("$name", ({ lib }) => {
  function expectOk(result: ParsedProvider) {
    if (!result.ok) throw new Error(`expected a valid block, got:\n${result.error.message}`);
    return result.config;
  }

  function expectError(result: ParsedProvider): ConfigError {
    expect(result.ok, "the block should be refused").toBe(false);
    if (result.ok) throw new Error("unreachable");
    expect(result.error).toBeInstanceOf(lib.ConfigError);
    expect(result.error).toBeInstanceOf(lib.CiAuthError);
    return result.error;
  }

  describe("parseOAuth2Block", () => {
    it("accepts the issue's block under provider miaou", () => {
      const result = lib.parseOAuth2Block(PROVIDER, block(), {});
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
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      expect(error.issues).toEqual([{ path: "oauth2", message: "must be an object" }]);
      expectWellFormed(error, PROVIDER);
    });

    it("reports a typo (clientID) as an unknown field, next to the missing clientId", () => {
      const error = expectError(lib.parseOAuth2Block(PROVIDER, block({ clientId: undefined, clientID: "opencode-ci" }), {}));
      expect(error.issues).toHaveLength(2);
      const unknown = error.issues.find((i) => i.path === "oauth2.clientID");
      expect(unknown?.message).toMatch(/^unknown field "clientID"/);
      expect(error.issues.find((i) => i.path === "oauth2.clientId")?.message).toBe("clientId is required");
      expectWellFormed(error, PROVIDER);
    });

    it("reports each unknown field on its own line, nested ones with their full path", () => {
      const error = expectError(
        lib.parseOAuth2Block(
          PROVIDER,
          block({ scope: "openid", client_id: "x", subjectTokenSource: { type: "github_actions", audiance: "x" } }),
          {},
        ),
      );
      expect(paths(error.issues).sort()).toEqual(["oauth2.client_id", "oauth2.scope", "oauth2.subjectTokenSource.audiance"]);
      for (const issue of error.issues) expect(issue.message).toMatch(/^unknown field "[a-z_]+"/i);
      expectWellFormed(error, PROVIDER);
    });

    it("names nested fields with dotted paths (source type, array index)", () => {
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, block({ scopes: ["openid", " "], subjectTokenSource: { type: "travis" } }), {}),
      );
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
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
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
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      expect(paths(error.issues).sort()).toEqual(["oauth2.clientSecret", "oauth2.privateKeyPath", "oauth2.tokenExchangeAudience"]);
      expectWellFormed(error, PROVIDER);
    });

    it("reports cross-field problems in the same pass as an unknown field", () => {
      const raw = block({ clientID: "x", tokenEndpointAuthMethod: "client_secret_post" });
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      expect(paths(error.issues).sort()).toEqual(["oauth2.clientID", "oauth2.clientSecret"]);
    });

    // "Every zod issue becomes one line naming the provider and the field, so a user fixes all problems in one pass."
    // A field-level problem must not hide a cross-field one: otherwise the user fixes the typo, reruns the job,
    // and only then learns that client_secret_post needs a secret.
    it("reports cross-field problems in the same pass as a field-level problem", () => {
      const raw = block({ clientId: undefined, clientID: "opencode-ci", tokenEndpointAuthMethod: "client_secret_post" });
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      expect(paths(error.issues).sort()).toEqual(["oauth2.clientID", "oauth2.clientId", "oauth2.clientSecret"]);
    });

    it("is stable: the same input gives the same issues", () => {
      const raw = block({ clientId: 1, issuer: "nope" });
      const a = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      const b = expectError(lib.parseOAuth2Block(PROVIDER, raw, {}));
      expect(a.issues).toEqual(b.issues);
      expect(a.message).toBe(b.message);
    });
  });

  describe("parseOAuth2Block: values are taken as they are", () => {
    // opencode substitutes {env:VAR} once, when it reads the file (env-references.ts). A value that came from the
    // environment and contains another reference must stay literal: expanding it again would leak that variable.
    it("does not expand an {env:…} reference that a substituted value contains", () => {
      const config = expectOk(
        lib.parseOAuth2Block(
          PROVIDER,
          block({
            subjectTokenSource: {
              type: "url",
              url: "https://tokens.example.com/t",
              headers: { Authorization: "Bearer {env:ACTIONS_ID_TOKEN_REQUEST_TOKEN}" },
            },
          }),
          {
            ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token-secret",
          },
        ),
      );
      expect(config.subjectTokenSource).toMatchObject({ headers: { Authorization: "Bearer {env:ACTIONS_ID_TOKEN_REQUEST_TOKEN}" } });
    });

    it("an empty value (what opencode makes of an unset variable) names the field and hints at {env:VAR}", () => {
      const error = expectError(lib.parseOAuth2Block(PROVIDER, block({ clientSecret: "" }), {}));
      expect(error.issues).toHaveLength(1);
      expect(error.issues[0]?.path).toBe("oauth2.clientSecret");
      expect(error.issues[0]?.message).toMatch(/must not be empty/);
      expect(error.issues[0]?.message).toContain("{env:VAR}");
      expectWellFormed(error, PROVIDER);
    });

    it("an empty value in a required nested field is reported at its path", () => {
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, block({ subjectTokenSource: { type: "github_actions", audience: "" } }), {}),
      );
      expect(paths(error.issues)).toEqual(["oauth2.subjectTokenSource.audience"]);
    });

    it("never echoes a secret value in the error", () => {
      const secret = "sup3r-s3cret-value";
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, block({ clientSecret: secret, tokenEndpointAuthMethod: "none", clientID: "typo" }), {}),
      );
      expect(paths(error.issues)).toContain("oauth2.clientID");
      expect(error.message.includes(secret)).toBe(false);
      expect(JSON.stringify(error.issues).includes(secret)).toBe(false);
    });
  });

  describe("parseOAuth2Block: the job's allow-lists", () => {
    const ISSUER = ISSUE_BLOCK.issuer;
    const AUD = ISSUE_BLOCK.subjectTokenSource.audience;

    it("a block inside every list is valid", () => {
      const env = { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: `https://other.example.com, ${ISSUER}`, OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: AUD };
      expectOk(lib.parseOAuth2Block(PROVIDER, block(), env));
    });

    it("an issuer outside OPENCODE_CI_AUTH_ALLOWED_ISSUERS is refused, naming the field, the variable and the list", () => {
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, block({ issuer: "https://evil.example.com" }), { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER }),
      );
      expect(error.issues).toEqual([
        {
          path: "oauth2.issuer",
          message: `the issuer "https://evil.example.com" is not in OPENCODE_CI_AUTH_ALLOWED_ISSUERS (${ISSUER}), which this job sets: use one of those, or add it to OPENCODE_CI_AUTH_ALLOWED_ISSUERS in the job's environment (the config file cannot allow it)`,
        },
      ]);
      expectWellFormed(error, PROVIDER);
    });

    it("matches exactly: a trailing slash is another issuer", () => {
      expectError(lib.parseOAuth2Block(PROVIDER, block({ issuer: `${ISSUER}/` }), { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER }));
    });

    it("a source audience outside OPENCODE_CI_AUTH_ALLOWED_AUDIENCES is refused", () => {
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, block({ subjectTokenSource: { type: "github_actions", audience: "https://cloud.example.com" } }), {
          OPENCODE_CI_AUTH_ALLOWED_AUDIENCES: AUD,
        }),
      );
      expect(paths(error.issues)).toEqual(["oauth2.subjectTokenSource.audience"]);
      expect(error.issues[0]?.message).toContain(`is not in OPENCODE_CI_AUTH_ALLOWED_AUDIENCES (${AUD})`);
    });

    it("tokenEndpoint: outside OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS, or set while only issuers are allowed, is refused", () => {
      const withEndpoint = block({ tokenEndpoint: "https://evil.example.com/token" });
      const outside = expectError(
        lib.parseOAuth2Block(PROVIDER, withEndpoint, { OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: "https://auth.example.com/token" }),
      );
      expect(paths(outside.issues)).toEqual(["oauth2.tokenEndpoint"]);
      const onlyIssuers = expectError(lib.parseOAuth2Block(PROVIDER, withEndpoint, { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER }));
      expect(onlyIssuers.issues).toEqual([
        {
          path: "oauth2.tokenEndpoint",
          message: expect.stringContaining("this job allows only token endpoints discovered from OPENCODE_CI_AUTH_ALLOWED_ISSUERS"),
        },
      ]);
      const allowed = {
        OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER,
        OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: "https://evil.example.com/token",
      };
      expectOk(lib.parseOAuth2Block(PROVIDER, withEndpoint, allowed));
    });

    it("no issuer while issuers are restricted: refused unless the token endpoint is allowed by its own list", () => {
      const raw = block({ issuer: undefined, tokenEndpoint: "https://auth.example.com/token" });
      const error = expectError(lib.parseOAuth2Block(PROVIDER, raw, { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER }));
      expect(paths(error.issues)).toEqual(["oauth2.issuer", "oauth2.tokenEndpoint"]);
      expectOk(
        lib.parseOAuth2Block(PROVIDER, raw, {
          OPENCODE_CI_AUTH_ALLOWED_ISSUERS: ISSUER,
          OPENCODE_CI_AUTH_ALLOWED_TOKEN_ENDPOINTS: "https://auth.example.com/token",
        }),
      );
    });

    it("a url source outside OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS is refused", () => {
      const raw = block({ subjectTokenSource: { type: "url", url: "https://evil.example.com/mint" } });
      const error = expectError(
        lib.parseOAuth2Block(PROVIDER, raw, { OPENCODE_CI_AUTH_ALLOWED_SOURCE_URLS: "https://tokens.example.com/mint" }),
      );
      expect(paths(error.issues)).toEqual(["oauth2.subjectTokenSource.url"]);
    });

    it("empty or blank lists restrict nothing", () => {
      expectOk(
        lib.parseOAuth2Block(PROVIDER, block({ issuer: "https://anything.example.com" }), { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: " , " }),
      );
    });
  });

  describe("parseProviders", () => {
    it("validates only providers carrying options.oauth2, and keeps their ids", () => {
      const results = lib.parseProviders(
        {
          provider: {
            openai: { options: { apiKey: "sk-not-ours" } },
            anthropic: {},
            empty: undefined,
            [PROVIDER]: { options: { baseURL: "https://models.example.com/v1", oauth2: block() } },
            broken: { options: { baseURL: "https://models.example.com/v1", oauth2: block({ clientId: undefined }) } },
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
      expect(lib.parseProviders({}, {})).toEqual([]);
      expect(lib.parseProviders({ provider: {} }, {})).toEqual([]);
    });

    it("treats an explicit null oauth2 as ours and invalid (it is not 'absent')", () => {
      const results = lib.parseProviders({ provider: { [PROVIDER]: { options: { oauth2: null } } } }, {});
      expect(results).toHaveLength(1);
      expect(results[0]?.ok).toBe(false);
    });

    it("passes its env (the allow-lists) to every block", () => {
      const entry = { options: { baseURL: "https://models.example.com/v1", oauth2: block() } };
      const results = lib.parseProviders(
        { provider: { a: entry, b: entry } },
        { OPENCODE_CI_AUTH_ALLOWED_ISSUERS: "https://other.example.com" },
      );
      expect(results.map((r) => (r.ok ? "ok" : paths(r.error.issues).join()))).toEqual(["oauth2.issuer", "oauth2.issuer"]);
    });

    it("options.baseURL is required, unless oauth2.allowMissingBaseURL says the SDK's own URL is intended", () => {
      const [missing] = lib.parseProviders({ provider: { [PROVIDER]: { options: { oauth2: block() } } } }, {});
      const error = expectError(missing as ParsedProvider);
      expect(error.issues).toEqual([
        { path: "options.baseURL", message: expect.stringContaining("is required: the access token is sent to it.") },
      ]);
      expect(error.issues[0]?.message).toContain("set oauth2.allowMissingBaseURL to true");
      const [allowed] = lib.parseProviders({ provider: { [PROVIDER]: { options: { oauth2: block({ allowMissingBaseURL: true }) } } } }, {});
      expect(expectOk(allowed as ParsedProvider).allowMissingBaseURL).toBe(true);
    });

    it("reports the baseURL's problem together with the block's, in one error", () => {
      const [result] = lib.parseProviders(
        { provider: { [PROVIDER]: { options: { baseURL: "http://models.example.com/v1", oauth2: block({ clientId: undefined }) } } } },
        {},
      );
      const error = expectError(result as ParsedProvider);
      expect(paths(error.issues)).toEqual(["oauth2.clientId", "options.baseURL"]);
      expect(error.issues[1]?.message).toContain("the access token would travel in clear text");
    });
  });
});
