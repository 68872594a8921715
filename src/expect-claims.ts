/**
 * `expectClaims`: the trust policy the user believes the IdP enforces, stated next to the config. Checked before a
 * grant, so a job on the wrong branch fails with a table of claim against expectation instead of an opaque
 * `invalid_grant`, and shown by `opencode-ci-auth doctor`.
 *
 * Patterns are globs over the whole value: `*` matches any run of characters (`/` included), `?` one character;
 * anything else is literal. A list of patterns matches when any does. An array claim (e.g. `aud`) matches when any
 * of its values does.
 */

export type ExpectClaims = Record<string, string | string[]>;

export interface ClaimCheck {
  claim: string;
  /** The claim's value as text (arrays joined with ", "), or undefined when the token lacks it. */
  actual: string | undefined;
  expected: string[];
  ok: boolean;
}

const cache = new Map<string, RegExp>();

/** Whether `value` matches the glob `pattern` as a whole. */
export function globMatch(pattern: string, value: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, "[\\s\\S]*")
      .replace(/\?/g, "[\\s\\S]");
    re = new RegExp(`^${source}$`);
    cache.set(pattern, re);
  }
  return re.test(value);
}

function values(claim: unknown): string[] {
  if (claim === undefined || claim === null) return [];
  if (Array.isArray(claim)) return claim.map((v) => String(v));
  return [typeof claim === "object" ? JSON.stringify(claim) : String(claim)];
}

/** One row per expected claim, in the order the config lists them. */
export function checkExpectedClaims(claims: Record<string, unknown>, expected: ExpectClaims): ClaimCheck[] {
  return Object.entries(expected).map(([claim, patterns]) => {
    const list = Array.isArray(patterns) ? patterns : [patterns];
    const actual = values(claims[claim]);
    return {
      claim,
      actual: actual.length ? actual.join(", ") : undefined,
      expected: list,
      ok: actual.some((v) => list.some((p) => globMatch(p, v))),
    };
  });
}

/**
 * The aligned table users read:
 *   repository  acme/app              ✓ acme/*
 *   ref         refs/heads/feature-x  ✗ expected refs/heads/main
 */
export function formatClaimTable(checks: readonly ClaimCheck[], indent = "  "): string {
  const claimWidth = Math.max(...checks.map((c) => c.claim.length), 0);
  const actualWidth = Math.max(...checks.map((c) => (c.actual ?? "(missing)").length), 0);
  return checks
    .map((c) => {
      const verdict = c.ok ? `✓ ${c.expected.join(" | ")}` : `✗ expected ${c.expected.join(" | ")}`;
      return `${indent}${c.claim.padEnd(claimWidth)}  ${(c.actual ?? "(missing)").padEnd(actualWidth)}  ${verdict}`;
    })
    .join("\n");
}
