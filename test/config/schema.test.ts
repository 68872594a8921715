/**
 * The zod schema of `provider.<id>.options.oauth2`: what a user may write, the defaults it fills in,
 * and the cross-field rules. Issue paths here are zod's raw paths; test/config/parse.test.ts covers how
 * they are turned into `oauth2.<field>` lines.
 */
import { describe, expect, it } from "vitest";

import { AUTH_METHODS, SOURCE_TYPES, oauth2Schema, subjectTokenSourceSchema } from "../../src/config/schema.js";
import { env as envDefinition } from "../../src/subject-token/env.js";
import { file as fileDefinition } from "../../src/subject-token/file.js";
import { githubActions } from "../../src/subject-token/github-actions.js";
import { gitlab } from "../../src/subject-token/gitlab.js";

const [envSource, fileSource, githubActionsSource, gitlabSource] = [
  envDefinition.schema,
  fileDefinition.schema,
  githubActions.schema,
  gitlab.schema,
];

/** The block from the issue, under provider "miaou". */
const ISSUE_BLOCK = {
  issuer: "https://auth.example.com/realms/acme",
  clientId: "opencode-ci",
  scopes: ["openid"],
  authFlow: "jwt_bearer",
  subjectTokenSource: { type: "github_actions", audience: "https://auth.example.com/realms/acme" },
} as const;

type Raw = Record<string, unknown>;

/** The issue block with some fields replaced; a field set to `undefined` is removed. */
function block(overrides: Raw = {}): Raw {
  const out: Raw = structuredClone(ISSUE_BLOCK) as unknown as Raw;
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

function parseOk(input: unknown) {
  const result = oauth2Schema.safeParse(input);
  if (!result.success)
    throw new Error(`expected a valid block, got: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return result.data;
}

/** The issues of an invalid block, as `{ path, message }` with a dotted path. */
function issuesOf(
  input: unknown,
  schema: {
    safeParse(v: unknown): { success: boolean; error?: { issues: { path: PropertyKey[]; message: string; code: string }[] } };
  } = oauth2Schema,
) {
  const result = schema.safeParse(input);
  expect(result.success, "the block should be refused").toBe(false);
  return (result.error?.issues ?? []).map((i) => ({ path: i.path.map(String).join("."), message: i.message, code: i.code }));
}

describe("oauth2Schema: the issue's block", () => {
  it("parses the exact block from the issue and keeps every value", () => {
    const config = parseOk(block());
    expect(config.issuer).toBe(ISSUE_BLOCK.issuer);
    expect(config.clientId).toBe(ISSUE_BLOCK.clientId);
    expect(config.scopes).toEqual([...ISSUE_BLOCK.scopes]);
    expect(config.authFlow).toBe("jwt_bearer");
    expect(config.subjectTokenSource).toEqual(ISSUE_BLOCK.subjectTokenSource);
    expect(config.tokenEndpoint).toBeUndefined();
    expect(config.clientSecret).toBeUndefined();
    expect(config.tokenEndpointAuthMethod).toBeUndefined();
  });

  it("parses the block as JSON text, as it appears in opencode.json", () => {
    const text = JSON.stringify({ provider: { miaou: { options: { oauth2: ISSUE_BLOCK } } } });
    const raw = (JSON.parse(text) as { provider: { miaou: { options: { oauth2: unknown } } } }).provider.miaou.options.oauth2;
    expect(parseOk(raw).subjectTokenSource.type).toBe("github_actions");
  });

  it("leaves subjectTokenType unset (the grant sends the JWT type) and refuses it with jwt_bearer", () => {
    expect(parseOk(block({ authFlow: "token_exchange" })).subjectTokenType).toBeUndefined();
    const issues = issuesOf(block({ subjectTokenType: "urn:ietf:params:oauth:token-type:id_token" }));
    expect(issues.map((i) => i.path)).toEqual(["subjectTokenType"]);
    expect(issues[0]?.message).toMatch(/only applies to authFlow "token_exchange"/);
  });

  it.each([
    ["privateKeyId", { privateKeyId: "k1" }],
    ["privateKeyAlg", { privateKeyAlg: "ES256" }],
  ])("refuses %s without private_key_jwt instead of ignoring it", (field, extra) => {
    const issues = issuesOf(block(extra));
    expect(issues.map((i) => i.path)).toEqual([field]);
    expect(issues[0]?.message).toMatch(/only used with tokenEndpointAuthMethod "private_key_jwt"/);
  });

  it("refuses a clientSecret beside private_key_jwt instead of ignoring it", () => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: "/k.pem", clientSecret: "s" }));
    expect(issues.map((i) => i.path)).toEqual(["clientSecret"]);
  });

  it("trims surrounding whitespace of text fields", () => {
    const config = parseOk(block({ clientId: "  opencode-ci \n", issuer: ` ${ISSUE_BLOCK.issuer} ` }));
    expect(config.clientId).toBe("opencode-ci");
    expect(config.issuer).toBe(ISSUE_BLOCK.issuer);
  });

  it("does not mutate its input", () => {
    const input = block({ scopes: "openid profile" });
    const before = structuredClone(input);
    parseOk(input);
    expect(input).toEqual(before);
  });
});

describe("oauth2Schema: authFlow", () => {
  it("defaults to jwt_bearer when omitted", () => {
    expect(parseOk(block({ authFlow: undefined })).authFlow).toBe("jwt_bearer");
  });

  it("accepts token_exchange", () => {
    expect(parseOk(block({ authFlow: "token_exchange" })).authFlow).toBe("token_exchange");
  });

  it("accepts client_credentials", () => {
    expect(parseOk(block({ authFlow: "client_credentials" })).authFlow).toBe("client_credentials");
  });

  it.each(["jwt-bearer", "JWT_BEARER", "clientCredentials", ""])("refuses %j and names the three valid flows", (authFlow) => {
    const issues = issuesOf(block({ authFlow }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("authFlow");
    expect(issues[0]?.message).toBe('authFlow must be "jwt_bearer", "token_exchange" or "client_credentials"');
  });
});

describe("oauth2Schema: scopes", () => {
  it("keeps an array", () => {
    expect(parseOk(block({ scopes: ["openid", "models.read"] })).scopes).toEqual(["openid", "models.read"]);
  });

  it('splits a space-separated string ("a b")', () => {
    expect(parseOk(block({ scopes: "openid models.read" })).scopes).toEqual(["openid", "models.read"]);
  });

  it('splits a comma-separated string ("a,b")', () => {
    expect(parseOk(block({ scopes: "openid,models.read" })).scopes).toEqual(["openid", "models.read"]);
  });

  it("splits mixed separators and drops empty parts", () => {
    expect(parseOk(block({ scopes: "  openid, models.read\tprofile ,, email  " })).scopes).toEqual([
      "openid",
      "models.read",
      "profile",
      "email",
    ]);
  });

  it("trims array elements", () => {
    expect(parseOk(block({ scopes: [" openid ", "email\n"] })).scopes).toEqual(["openid", "email"]);
  });

  it("is optional", () => {
    expect(parseOk(block({ scopes: undefined })).scopes).toBeUndefined();
  });

  it.each([[5], [{ scope: "openid" }], [true]])("refuses %j with a message naming both accepted forms", (scopes) => {
    const issues = issuesOf(block({ scopes }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("scopes");
    expect(issues[0]?.message).toMatch(/array of strings or a space\/comma-separated string/);
  });
});

describe("oauth2Schema: issuer and tokenEndpoint", () => {
  it("requires one of them, and says so on the issuer field", () => {
    const issues = issuesOf(block({ issuer: undefined }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("issuer");
    expect(issues[0]?.message).toMatch(/issuer is required/);
    expect(issues[0]?.message).toMatch(/tokenEndpoint/);
  });

  it("accepts tokenEndpoint alone", () => {
    const config = parseOk(
      block({ issuer: undefined, tokenEndpoint: "https://auth.example.com/realms/acme/protocol/openid-connect/token" }),
    );
    expect(config.issuer).toBeUndefined();
    expect(config.tokenEndpoint).toBe("https://auth.example.com/realms/acme/protocol/openid-connect/token");
  });

  it("accepts both", () => {
    const config = parseOk(block({ tokenEndpoint: "https://auth.example.com/token" }));
    expect(config.issuer).toBe(ISSUE_BLOCK.issuer);
    expect(config.tokenEndpoint).toBe("https://auth.example.com/token");
  });

  it("accepts plain http to loopback only (local tests and demos)", () => {
    expect(parseOk(block({ issuer: "http://127.0.0.1:8080/realms/acme" })).issuer).toBe("http://127.0.0.1:8080/realms/acme");
    expect(parseOk(block({ issuer: undefined, tokenEndpoint: "http://localhost:8080/token" })).tokenEndpoint).toBe(
      "http://localhost:8080/token",
    );
  });

  it.each([
    ["issuer", { issuer: "http://auth.example.com/realms/acme" }],
    ["tokenEndpoint", { tokenEndpoint: "http://auth.example.com/token" }],
  ])("refuses plain http to a non-loopback host in %s, because a token must not travel in clear text", (field, input) => {
    const issues = issuesOf(block(input));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe(field);
    expect(issues[0]?.message).toMatch(/is not https/);
  });

  it.each([
    "ftp://auth.example.com/realms/acme",
    "file:///etc/passwd",
    "auth.example.com/realms/acme",
    "/realms/acme",
    "javascript:alert(1)",
  ])("refuses the non-http(s) or relative issuer %j with an example of a valid one", (issuer) => {
    const issues = issuesOf(block({ issuer }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("issuer");
    expect(issues[0]?.message).toMatch(/^issuer must be an absolute http\(s\) URL/);
    expect(issues[0]?.message).toContain("https://");
  });

  it("refuses a non-http(s) tokenEndpoint and names that field", () => {
    const issues = issuesOf(block({ tokenEndpoint: "ftp://auth.example.com/token" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("tokenEndpoint");
    expect(issues[0]?.message).toMatch(/^tokenEndpoint must be an absolute http\(s\) URL/);
  });

  it("refuses an empty issuer with the {env:VAR} hint", () => {
    const issues = issuesOf(block({ issuer: "  " }));
    expect(issues.map((i) => i.path)).toContain("issuer");
    expect(issues.find((i) => i.path === "issuer")?.message).toMatch(/must not be empty.*\{env:VAR\}/);
  });
});

describe("oauth2Schema: clientId", () => {
  it("is required", () => {
    const issues = issuesOf(block({ clientId: undefined }));
    expect(issues).toEqual([{ path: "clientId", message: "clientId is required", code: "custom" }]);
  });

  it("must be a string", () => {
    const issues = issuesOf(block({ clientId: 42 }));
    expect(issues).toEqual([{ path: "clientId", message: "clientId must be a string", code: "invalid_type" }]);
  });

  it("must not be blank", () => {
    const issues = issuesOf(block({ clientId: " \t" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("clientId");
    expect(issues[0]?.message).toMatch(/clientId must not be empty/);
  });
});

describe("oauth2Schema: token endpoint auth method", () => {
  it.each(["client_secret_post", "client_secret_basic"] as const)("%s needs a clientSecret", (method) => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: method }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("clientSecret");
    expect(issues[0]?.message).toBe(`clientSecret is required with tokenEndpointAuthMethod "${method}"`);
  });

  it.each(["client_secret_post", "client_secret_basic"] as const)("%s with a clientSecret is valid", (method) => {
    const config = parseOk(block({ tokenEndpointAuthMethod: method, clientSecret: "s3cr3t" }));
    expect(config.tokenEndpointAuthMethod).toBe(method);
    expect(config.clientSecret).toBe("s3cr3t");
  });

  it('"none" with a clientSecret is a conflict, reported on clientSecret', () => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: "none", clientSecret: "s3cr3t" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("clientSecret");
    expect(issues[0]?.message).toMatch(/"none"/);
    expect(issues[0]?.message).toMatch(/remove one of them/);
    expect(issues[0]?.message).not.toContain("s3cr3t");
  });

  it('"none" without a secret is valid', () => {
    expect(parseOk(block({ tokenEndpointAuthMethod: "none" })).tokenEndpointAuthMethod).toBe("none");
  });

  it("a clientSecret without a method is valid (the method is derived later)", () => {
    const config = parseOk(block({ clientSecret: "s3cr3t" }));
    expect(config.tokenEndpointAuthMethod).toBeUndefined();
    expect(config.clientSecret).toBe("s3cr3t");
  });

  it("private_key_jwt needs privateKeyPath", () => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: "private_key_jwt" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("privateKeyPath");
    expect(issues[0]?.message).toMatch(/privateKeyPath .*required with tokenEndpointAuthMethod "private_key_jwt"/);
  });

  it("private_key_jwt with privateKeyPath, kid and alg is valid", () => {
    const config = parseOk(
      block({ tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: "/run/keys/ci.pem", privateKeyId: "k1", privateKeyAlg: "ES256" }),
    );
    expect(config.privateKeyPath).toBe("/run/keys/ci.pem");
    expect(config.privateKeyId).toBe("k1");
    expect(config.privateKeyAlg).toBe("ES256");
  });

  it.each([undefined, "none", "client_secret_post"])("privateKeyPath with method %j is refused as unused", (method) => {
    const issues = issuesOf(
      block({
        tokenEndpointAuthMethod: method,
        privateKeyPath: "/run/keys/ci.pem",
        clientSecret: method === "client_secret_post" ? "s" : undefined,
      }),
    );
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("privateKeyPath");
    expect(issues[0]?.message).toMatch(/only used with tokenEndpointAuthMethod "private_key_jwt"/);
  });

  it("an unknown method is refused with the list of valid ones", () => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: "client_secret_jwt" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("tokenEndpointAuthMethod");
    for (const m of AUTH_METHODS) expect(issues[0]?.message).toContain(`"${m}"`);
  });

  it("an unknown privateKeyAlg is refused", () => {
    const issues = issuesOf(block({ tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: "/k.pem", privateKeyAlg: "HS256" }));
    expect(issues.map((i) => i.path)).toEqual(["privateKeyAlg"]);
  });
});

describe("oauth2Schema: token exchange fields", () => {
  it.each([
    ["tokenExchangeAudience", "models-api"],
    ["tokenExchangeResource", "https://models.example.com"],
    ["requestedTokenType", "urn:ietf:params:oauth:token-type:access_token"],
  ])("%s is refused with jwt_bearer", (field, value) => {
    const issues = issuesOf(block({ [field]: value }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe(field);
    expect(issues[0]?.message).toBe(`${field} only applies to authFlow "token_exchange"`);
  });

  it("is refused with the default flow too (authFlow omitted)", () => {
    const issues = issuesOf(block({ authFlow: undefined, tokenExchangeAudience: "models-api" }));
    expect(issues.map((i) => i.path)).toEqual(["tokenExchangeAudience"]);
  });

  it("reports each misplaced field separately", () => {
    const issues = issuesOf(block({ tokenExchangeAudience: "a", tokenExchangeResource: "https://r.example.com", requestedTokenType: "t" }));
    expect(issues.map((i) => i.path).sort()).toEqual(["requestedTokenType", "tokenExchangeAudience", "tokenExchangeResource"]);
  });

  it("are accepted with token_exchange, and lists are normalised", () => {
    const config = parseOk(
      block({
        authFlow: "token_exchange",
        tokenExchangeAudience: "models-api, other-api",
        tokenExchangeResource: ["https://models.example.com/v1"],
        requestedTokenType: "urn:ietf:params:oauth:token-type:access_token",
      }),
    );
    expect(config.tokenExchangeAudience).toEqual(["models-api", "other-api"]);
    expect(config.tokenExchangeResource).toEqual(["https://models.example.com/v1"]);
    expect(config.requestedTokenType).toBe("urn:ietf:params:oauth:token-type:access_token");
  });

  it("refuses a tokenExchangeResource that is not an absolute URI, quoting it", () => {
    const issues = issuesOf(block({ authFlow: "token_exchange", tokenExchangeResource: "https://ok.example.com models-api" }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("tokenExchangeResource");
    expect(issues[0]?.message).toBe('"models-api" is not an absolute URI');
  });
});

describe("oauth2Schema: unknown fields", () => {
  it('refuses a typo such as "clientID" as an unrecognized key (and clientId is then missing)', () => {
    const input = block({ clientId: undefined, clientID: "opencode-ci" });
    const result = oauth2Schema.safeParse(input);
    expect(result.success).toBe(false);
    const unknown = result.error?.issues.filter((i) => i.code === "unrecognized_keys") ?? [];
    expect(unknown).toHaveLength(1);
    expect((unknown[0] as { keys?: string[] }).keys).toEqual(["clientID"]);
    expect(result.error?.issues.some((i) => i.path.join(".") === "clientId")).toBe(true);
  });

  it("refuses an unknown key inside subjectTokenSource", () => {
    const result = oauth2Schema.safeParse(block({ subjectTokenSource: { type: "github_actions", audiance: "x" } }));
    expect(result.success).toBe(false);
    const unknown = result.error?.issues.find((i) => i.code === "unrecognized_keys") as { path: PropertyKey[]; keys: string[] } | undefined;
    expect(unknown?.path).toEqual(["subjectTokenSource"]);
    expect(unknown?.keys).toEqual(["audiance"]);
  });
});

describe("subjectTokenSource", () => {
  it("github_actions: audience is optional", () => {
    expect(subjectTokenSourceSchema.parse({ type: "github_actions" })).toEqual({ type: "github_actions" });
    expect(githubActionsSource.parse({ type: "github_actions", audience: "api://x" })).toEqual({
      type: "github_actions",
      audience: "api://x",
    });
  });

  it("gitlab: var defaults to OPENCODE_ID_TOKEN", () => {
    expect(subjectTokenSourceSchema.parse({ type: "gitlab" })).toEqual({ type: "gitlab", var: "OPENCODE_ID_TOKEN" });
    expect(gitlabSource.parse({ type: "gitlab" }).var).toBe("OPENCODE_ID_TOKEN");
  });

  it("gitlab: a custom var and audience are kept", () => {
    expect(subjectTokenSourceSchema.parse({ type: "gitlab", var: "MY_ID_TOKEN", audience: "https://auth.example.com" })).toEqual({
      type: "gitlab",
      var: "MY_ID_TOKEN",
      audience: "https://auth.example.com",
    });
  });

  it("gitlab: an empty var is refused rather than defaulted", () => {
    const issues = issuesOf({ type: "gitlab", var: "" }, subjectTokenSourceSchema);
    expect(issues.map((i) => i.path)).toEqual(["var"]);
  });

  it("file: path is required and has no default", () => {
    expect(subjectTokenSourceSchema.parse({ type: "file", path: "/var/run/secrets/tokens/oidc" })).toEqual({
      type: "file",
      path: "/var/run/secrets/tokens/oidc",
    });
    const issues = issuesOf({ type: "file" }, subjectTokenSourceSchema);
    expect(issues).toEqual([{ path: "path", message: "path is required", code: "invalid_type" }]);
    expect(fileSource.safeParse({ type: "file", path: "/t", audience: "a" }).success).toBe(true);
  });

  it("env: var is required and has no default", () => {
    expect(subjectTokenSourceSchema.parse({ type: "env", var: "CIRCLE_OIDC_TOKEN_V2" })).toEqual({
      type: "env",
      var: "CIRCLE_OIDC_TOKEN_V2",
    });
    const issues = issuesOf({ type: "env" }, subjectTokenSourceSchema);
    expect(issues).toEqual([{ path: "var", message: "var is required", code: "invalid_type" }]);
    expect(envSource.safeParse({ type: "env", var: "X", audience: "a" }).success).toBe(true);
  });

  it.each(["travis", "GitHub_Actions", "", 3])("refuses the source type %j and lists the valid ones", (type) => {
    const issues = issuesOf({ type, audience: "x" }, subjectTokenSourceSchema);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("type");
    for (const t of SOURCE_TYPES) expect(issues[0]?.message).toContain(`"${t}"`);
  });

  it.each([undefined, "github_actions", ["github_actions"], null])("refuses a non-object source %j with an example", (value) => {
    const issues = issuesOf(block({ subjectTokenSource: value === undefined ? undefined : value }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("subjectTokenSource");
    expect(issues[0]?.message).toMatch(/subjectTokenSource must be an object such as \{ "type": "github_actions"/);
  });

  it("refuses an empty audience", () => {
    const issues = issuesOf({ type: "github_actions", audience: "" }, subjectTokenSourceSchema);
    expect(issues.map((i) => i.path)).toEqual(["audience"]);
    expect(issues[0]?.message).toMatch(/audience must not be empty/);
  });

  it("refuses a field of another source type (strict per type)", () => {
    const result = subjectTokenSourceSchema.safeParse({ type: "github_actions", var: "OPENCODE_ID_TOKEN" });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.code)).toEqual(["unrecognized_keys"]);
  });
});
