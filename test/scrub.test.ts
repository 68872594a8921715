/**
 * src/scrub.ts: the shape-based scrubber. Its ordinary behaviour (JWTs, opaque tokens, words that survive) is also
 * covered through the logger in log.test.ts; this file pins what the logger tests cannot: linear time on hostile
 * input, and scrubbing before cutting.
 */
import { describe, expect, it } from "vitest";

import { CENSOR, quote, scrub } from "../src/scrub.js";

const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.c2lnbmF0dXJlLWJ5dGVz";

describe("scrub", () => {
  it.each([
    ["a JWT", `a ${JWT} b`, `a ${CENSOR} b`],
    ["a JWT without signature", "x eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. y", `x ${CENSOR} y`],
    ["a JWT glued to a prefix", `Bearer=${JWT}`, `Bearer=${CENSOR}`],
    ["a JWT followed by more dotted text", `${JWT}.more`, `${CENSOR}.more`],
    ["two JWTs in one dotted run", `${JWT}.${JWT}`, `${CENSOR}.${CENSOR}`],
    ["an eyJ run without a dot, short and plain", "eyJ.", "eyJ."],
    ["an opaque token", "tok 9fK2mQ7xR4vL8nB3tY6wZ1pC5sD0gH2j end", `tok ${CENSOR} end`],
    ["a long word", "internationalization-and-localization-settings", "internationalization-and-localization-settings"],
    [
      "a URL",
      "https://auth.example.com/realms/acme/protocol/openid-connect/token",
      "https://auth.example.com/realms/acme/protocol/openid-connect/token",
    ],
  ])("%s", (_, input, expected) => {
    expect(scrub(input)).toBe(expected);
  });

  // The old regexes backtracked: 80 KB of `eyJ` took 2.9 s, so 1 MB took minutes. A linear pass takes milliseconds;
  // the bound leaves a busy machine two orders of magnitude of room.
  it.each([
    ["one 1 MB run of eyJ", "eyJ".repeat(350_000)],
    ["1 MB of eyJ. segments", "eyJ.".repeat(262_144)],
    ["1 MB of 31-character runs", `${"a".repeat(30)}1 `.repeat(32_768)],
    ["a 10 MB run of one letter", "x".repeat(10 * 1024 * 1024)],
  ])("runs in linear time on hostile input: %s", (_, input) => {
    const started = performance.now();
    const out = scrub(input);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(out.length).toBeGreaterThan(0);
  });
});

describe("quote", () => {
  it("scrubs before it cuts: a token across the cut is not shown in part", () => {
    const token = "Zq7k9XwP2mB4vL8nR3tY6k9XwP2mB4vL8nR3tY6";
    const text = `${"w".repeat(20)} ${token}`;
    expect(quote(text, 30)).toBe(`${"w".repeat(20)} ${CENSOR.slice(0, 9)}…`);
    expect(quote(text, 30)).not.toContain("Zq7");
  });

  it("collapses whitespace and leaves short text whole", () => {
    expect(quote("  the\n\tservice   failed ", 200)).toBe("the service failed");
  });
});
