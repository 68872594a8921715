/** src/cache/file-key.ts: the file cache's key changes with everything that shapes the token, and nothing else. */
import { describe, expect, it } from "vitest";

import { tokenCacheKey, type TokenCacheKeyInput } from "../../src/cache/file-key.js";

const BASE: TokenCacheKeyInput = {
  issuer: "https://auth.example.com/realms/acme",
  clientId: "opencode-ci",
  authFlow: "jwt_bearer",
  scopes: ["openid", "models.read"],
  source: {
    type: "github_actions",
    identity: '["github_actions","https://auth.example.com/realms/acme","https://github.com","123456","987","1","review"]',
  },
};
const KEY = tokenCacheKey(BASE);

describe("tokenCacheKey", () => {
  it("is 64 hex digits and deterministic", () => {
    expect(KEY).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenCacheKey({ ...BASE, scopes: [...(BASE.scopes ?? [])] })).toBe(KEY);
  });

  const variants: [string, Partial<TokenCacheKeyInput>][] = [
    ["issuer", { issuer: "https://auth.example.com/realms/other" }],
    ["issuer trailing slash", { issuer: "https://auth.example.com/realms/acme/" }],
    ["no issuer", { issuer: undefined }],
    ["tokenEndpoint", { tokenEndpoint: "https://auth.example.com/token" }],
    ["clientId", { clientId: "opencode-ci-2" }],
    ["authFlow", { authFlow: "token_exchange" }],
    ["a scope added", { scopes: ["openid", "models.read", "models.write"] }],
    ["a scope removed", { scopes: ["openid"] }],
    ["no scopes", { scopes: undefined }],
    ["tokenExchangeAudience", { tokenExchangeAudience: ["api"] }],
    ["tokenExchangeResource", { tokenExchangeResource: ["https://api.example.com"] }],
    ["requestedTokenType", { requestedTokenType: "urn:ietf:params:oauth:token-type:access_token" }],
    ["subjectTokenType", { subjectTokenType: "urn:ietf:params:oauth:token-type:jwt" }],
    ["source type", { source: { type: "gitlab", identity: BASE.source.identity } }],
    ["source identity", { source: { type: "github_actions", identity: BASE.source.identity.replace('"987"', '"988"') } }],
  ];
  it.each(variants)("changes with %s", (_name, change) => {
    expect(tokenCacheKey({ ...BASE, ...change })).not.toBe(KEY);
  });

  it("all variants are distinct from each other", () => {
    const keys = variants.map(([, change]) => tokenCacheKey({ ...BASE, ...change }));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("audience and resource lists are distinct from each other even with the same values", () => {
    const te = { ...BASE, authFlow: "token_exchange" };
    expect(tokenCacheKey({ ...te, tokenExchangeAudience: ["x"] })).not.toBe(tokenCacheKey({ ...te, tokenExchangeResource: ["x"] }));
  });

  it("is stable under reordering and duplicates of scopes, audiences and resources", () => {
    const te: TokenCacheKeyInput = {
      ...BASE,
      authFlow: "token_exchange",
      tokenExchangeAudience: ["a", "b"],
      tokenExchangeResource: ["https://r1", "https://r2"],
    };
    const reordered: TokenCacheKeyInput = {
      ...te,
      scopes: ["models.read", "openid", "openid"],
      tokenExchangeAudience: ["b", "a"],
      tokenExchangeResource: ["https://r2", "https://r1", "https://r2"],
    };
    expect(tokenCacheKey(reordered)).toBe(tokenCacheKey(te));
    expect(tokenCacheKey({ ...BASE, scopes: ["models.read", "openid"] })).toBe(KEY);
  });

  it("an empty list is the same as none (the same request is sent)", () => {
    const none = { ...BASE, scopes: undefined };
    expect(tokenCacheKey({ ...BASE, scopes: [] })).toBe(tokenCacheKey(none));
    expect(tokenCacheKey({ ...none, tokenExchangeAudience: [] })).toBe(tokenCacheKey(none));
  });

  it("is independent of the input's key order and ignores fields it does not know (a secret is not hashed in)", () => {
    const shuffled = { source: BASE.source, scopes: BASE.scopes, authFlow: BASE.authFlow, clientId: BASE.clientId, issuer: BASE.issuer };
    expect(tokenCacheKey(shuffled)).toBe(KEY);
    const withSecret = { ...BASE, clientSecret: "s3cret", providerId: "miaou" } as TokenCacheKeyInput;
    expect(tokenCacheKey(withSecret)).toBe(KEY);
  });

  it("refuses an empty identity or clientId", () => {
    expect(() => tokenCacheKey({ ...BASE, source: { type: "env", identity: " " } })).toThrow(TypeError);
    expect(() => tokenCacheKey({ ...BASE, clientId: "" })).toThrow(TypeError);
  });
});
