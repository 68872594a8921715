/**
 * src/expect-claims.ts: the glob syntax of `expectClaims`, how a token's claims are compared with it, and the table
 * users read (the exact layout). Pure functions: no servers needed.
 */
import { describe, expect, it } from "vitest";

import { checkExpectedClaims, formatClaimTable, globMatch } from "../src/expect-claims.js";
import type { ClaimCheck } from "../src/expect-claims.js";

describe("globMatch", () => {
  it("`*` matches any run of characters, `/` included, and the empty run", () => {
    expect(globMatch("acme/*", "acme/app")).toBe(true);
    expect(globMatch("acme/*", "acme/app/nested/deeper")).toBe(true);
    expect(globMatch("acme/*", "acme/")).toBe(true);
    expect(globMatch("*", "")).toBe(true);
    expect(globMatch("*", "anything/at all:here")).toBe(true);
    expect(globMatch("repo:acme/*:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/main")).toBe(true);
    expect(globMatch("repo:acme/*:ref:refs/heads/*", "repo:acme/app:ref:refs/tags/v1")).toBe(false);
    expect(globMatch("refs/*/main", "refs/heads/feature/main")).toBe(true);
  });

  it("GitHub's immutable sub: a pattern written for the name form does not match it", () => {
    const immutable = "repo:acme@200001/app@100001:ref:refs/heads/main";
    expect(globMatch("repo:acme/*:ref:refs/heads/*", immutable)).toBe(false);
    expect(globMatch("repo:acme@200001/*:ref:refs/heads/*", immutable)).toBe(true);
    expect(globMatch("repo:acme@200001/app@100001:*", immutable)).toBe(true);
  });

  it("`?` matches exactly one character (a `/` too)", () => {
    expect(globMatch("v?", "v1")).toBe(true);
    expect(globMatch("v?", "v")).toBe(false);
    expect(globMatch("v?", "v12")).toBe(false);
    expect(globMatch("refs/tags/v?.?", "refs/tags/v1.2")).toBe(true);
    expect(globMatch("a?b", "a/b")).toBe(true);
  });

  it("anchors on the whole value: no prefix, suffix or substring match", () => {
    expect(globMatch("refs/heads/main", "refs/heads/main")).toBe(true);
    expect(globMatch("refs/heads/main", "refs/heads/main2")).toBe(false);
    expect(globMatch("refs/heads/main", "xrefs/heads/main")).toBe(false);
    expect(globMatch("acme/*", "evil/acme/app")).toBe(false);
    expect(globMatch("acme", "acme/app")).toBe(false);
    expect(globMatch("", "")).toBe(true);
    expect(globMatch("", "x")).toBe(false);
  });

  it("is case sensitive", () => {
    expect(globMatch("Acme/*", "acme/app")).toBe(false);
  });

  it("treats regex metacharacters literally", () => {
    expect(globMatch("a.b", "a.b")).toBe(true);
    expect(globMatch("a.b", "axb")).toBe(false);
    expect(globMatch("c++", "c++")).toBe(true);
    expect(globMatch("c++", "cc")).toBe(false);
    expect(globMatch("f(x)", "f(x)")).toBe(true);
    expect(globMatch("f(x)", "fx")).toBe(false);
    expect(globMatch("[abc]", "[abc]")).toBe(true);
    expect(globMatch("[abc]", "a")).toBe(false);
    expect(globMatch("a|b", "a")).toBe(false);
    expect(globMatch("a|b", "a|b")).toBe(true);
    expect(globMatch("^x$", "^x$")).toBe(true);
    expect(globMatch("^x$", "x")).toBe(false);
    expect(globMatch("a{2}", "aa")).toBe(false);
    expect(globMatch("a{2}", "a{2}")).toBe(true);
    expect(globMatch("\\d", "\\d")).toBe(true);
    expect(globMatch("\\d", "5")).toBe(false);
    expect(globMatch("ci.yml@refs/heads/*", "ci.yml@refs/heads/main")).toBe(true);
    expect(globMatch("ci.yml@refs/heads/*", "ciXyml@refs/heads/main")).toBe(false);
  });

  it("gives the same answer on repeated use of a pattern (compiled patterns are cached)", () => {
    for (let i = 0; i < 3; i++) {
      expect(globMatch("acme/*", "acme/app")).toBe(true);
      expect(globMatch("acme/*", "other/app")).toBe(false);
    }
  });
});

describe("checkExpectedClaims", () => {
  const claims = {
    repository: "acme/app",
    ref: "refs/heads/feature-x",
    run_attempt: 2,
    ref_protected: true,
    aud: ["https://idp.example/acme", "https://github.com/acme"],
    nested: { a: 1 },
    none: null,
    empty: [],
  };

  it("one row per expected claim, in the order the config lists them", () => {
    const rows = checkExpectedClaims(claims, { ref: "refs/heads/main", repository: "acme/*" });
    expect(rows).toEqual([
      { claim: "ref", actual: "refs/heads/feature-x", expected: ["refs/heads/main"], ok: false },
      { claim: "repository", actual: "acme/app", expected: ["acme/*"], ok: true },
    ]);
  });

  it("compares numbers and booleans by their text", () => {
    expect(checkExpectedClaims(claims, { run_attempt: "2" })[0]).toMatchObject({ actual: "2", ok: true });
    expect(checkExpectedClaims(claims, { run_attempt: "1" })[0]).toMatchObject({ actual: "2", ok: false });
    expect(checkExpectedClaims({ run_attempt: 12 }, { run_attempt: "1*" })[0]).toMatchObject({ actual: "12", ok: true });
    expect(checkExpectedClaims(claims, { ref_protected: "true" })[0]).toMatchObject({ actual: "true", ok: true });
    expect(checkExpectedClaims(claims, { ref_protected: "false" })[0]).toMatchObject({ actual: "true", ok: false });
  });

  it("an array claim (aud) matches when any of its values does, each value on its own", () => {
    expect(checkExpectedClaims(claims, { aud: "https://github.com/acme" })[0]).toEqual({
      claim: "aud",
      actual: "https://idp.example/acme, https://github.com/acme",
      expected: ["https://github.com/acme"],
      ok: true,
    });
    expect(checkExpectedClaims(claims, { aud: "https://idp.example/*" })[0]?.ok).toBe(true);
    expect(checkExpectedClaims(claims, { aud: "https://other.example" })[0]?.ok).toBe(false);
    // The joined text is only for display: it never matches as one value.
    expect(checkExpectedClaims(claims, { aud: "https://idp.example/acme, https://github.com/acme" })[0]?.ok).toBe(false);
  });

  it("a missing, null or empty claim fails, whatever the pattern (even `*`)", () => {
    for (const claim of ["environment", "none", "empty"]) {
      expect(checkExpectedClaims(claims, { [claim]: "*" })[0]).toEqual({ claim, actual: undefined, expected: ["*"], ok: false });
    }
  });

  it("a list of patterns matches when any does", () => {
    const expected = { ref: ["refs/heads/main", "refs/tags/v*"] };
    expect(checkExpectedClaims({ ref: "refs/tags/v1.2.0" }, expected)[0]).toMatchObject({
      ok: true,
      expected: ["refs/heads/main", "refs/tags/v*"],
    });
    expect(checkExpectedClaims({ ref: "refs/heads/main" }, expected)[0]?.ok).toBe(true);
    expect(checkExpectedClaims({ ref: "refs/heads/dev" }, expected)[0]?.ok).toBe(false);
  });

  it("an object claim is compared as its JSON text", () => {
    expect(checkExpectedClaims(claims, { nested: '{"a":1}' })[0]).toMatchObject({ actual: '{"a":1}', ok: true });
  });

  it("no expectations, no rows", () => {
    expect(checkExpectedClaims(claims, {})).toEqual([]);
  });
});

describe("formatClaimTable", () => {
  const repository: ClaimCheck = { claim: "repository", actual: "acme/app", expected: ["acme/*"], ok: true };
  const ref: ClaimCheck = { claim: "ref", actual: "refs/heads/feature-x", expected: ["refs/heads/main"], ok: false };

  it("aligns claim, value and verdict; each column as wide as its longest entry, two spaces apart", () => {
    expect(formatClaimTable([repository, ref]).split("\n")).toEqual([
      "  repository  acme/app              ✓ acme/*",
      "  ref         refs/heads/feature-x  ✗ expected refs/heads/main",
    ]);
  });

  it("reproduces the issue's table exactly when the longest value is 24 characters", () => {
    // The issue's example pads the value column to 24: the width of its longest value, here `aud`'s.
    const aud: ClaimCheck = { claim: "aud", actual: "https://idp.example/acme", expected: ["https://idp.example/*"], ok: true };
    expect(aud.actual).toHaveLength(24);
    expect(formatClaimTable([repository, ref, aud], "").split("\n")).toEqual([
      "repository  acme/app                  ✓ acme/*",
      "ref         refs/heads/feature-x      ✗ expected refs/heads/main",
      "aud         https://idp.example/acme  ✓ https://idp.example/*",
    ]);
  });

  it("shows a missing claim as (missing), which counts for the width, and lists patterns with |", () => {
    const env: ClaimCheck = { claim: "environment", actual: undefined, expected: ["production", "staging"], ok: false };
    const tag: ClaimCheck = { claim: "ref", actual: "refs/tags/v1", expected: ["refs/heads/main", "refs/tags/v*"], ok: true };
    expect(formatClaimTable([env, tag], "    ").split("\n")).toEqual([
      "    environment  (missing)     ✗ expected production | staging",
      "    ref          refs/tags/v1  ✓ refs/heads/main | refs/tags/v*",
    ]);
  });

  it("an empty list renders as an empty string", () => {
    expect(formatClaimTable([])).toBe("");
  });

  it("renders what checkExpectedClaims returns", () => {
    const table = formatClaimTable(
      checkExpectedClaims({ repository: "acme/app", ref: "refs/heads/feature-x" }, { repository: "acme/*", ref: "refs/heads/main" }),
    );
    expect(table).toBe("  repository  acme/app              ✓ acme/*\n  ref         refs/heads/feature-x  ✗ expected refs/heads/main");
  });
});
