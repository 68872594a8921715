/** src/agent/redact-secrets.ts: known values and JWTs of known issuers leave tool output; everything else stays. */
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";

import { REDACTED, redactSecrets } from "../../src/agent/redact-secrets.js";

const key = new TextEncoder().encode("a-test-hmac-key-of-32-bytes-long!");
const jwt = (iss: string) =>
  new SignJWT({ sub: "repo:acme/app:ref:refs/heads/main" }).setProtectedHeader({ alg: "HS256" }).setIssuer(iss).sign(key);

describe("redactSecrets", () => {
  it("removes every occurrence of each value, the longest first", () => {
    const secrets = { values: ["request-token-0123", "request-token-0123-and-more"], jwtIssuers: new Set<string>() };
    expect(redactSecrets("a=request-token-0123-and-more b=request-token-0123 c=request-token-0123", secrets)).toBe(
      `a=${REDACTED} b=${REDACTED} c=${REDACTED}`,
    );
  });

  it('leaves values shorter than 8 characters alone (a variable set to "1" must not blank every 1)', () => {
    expect(redactSecrets("true 1 1234567", { values: ["true", "1", "1234567"], jwtIssuers: new Set() })).toBe("true 1 1234567");
  });

  it("removes a JWT of a known issuer, wherever it stands, and keeps a JWT of another issuer", async () => {
    const job = await jwt("https://token.actions.githubusercontent.com");
    const other = await jwt("https://login.example.com");
    const text = `{"value":"${job}"}\nAuthorization: Bearer ${other}\n${job}.trailing`;
    const out = redactSecrets(text, { values: [], jwtIssuers: new Set(["https://token.actions.githubusercontent.com"]) });
    expect(out).toBe(`{"value":"${REDACTED}"}\nAuthorization: Bearer ${other}\n${REDACTED}.trailing`);
  });

  it("leaves ordinary output alone", () => {
    const text = "total 12\n-rw-r--r-- 1 runner docker 220 opencode.json\nPATH=/usr/bin:/bin\n";
    expect(
      redactSecrets(text, { values: ["ghs_0123456789abcdef"], jwtIssuers: new Set(["https://token.actions.githubusercontent.com"]) }),
    ).toBe(text);
  });
});
