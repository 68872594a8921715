/** isLoopback / insecureReason: https everywhere, plain http only to loopback. */
import { describe, expect, it } from "vitest";

import { insecureMetadataReason, insecureReason, isLoopback } from "../../src/http/transport.js";

describe("isLoopback", () => {
  it.each([
    "http://127.0.0.1:8080/token",
    "http://127.0.0.1/",
    "http://127.1.2.3/",
    "http://127.255.255.255/",
    "http://localhost:3000/",
    "http://LOCALHOST/",
    "http://[::1]:8443/token",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.0.0.1/",
  ])("%s is loopback", (url) => {
    expect(isLoopback(new URL(url))).toBe(true);
  });

  it.each([
    "http://128.0.0.1/",
    "http://10.0.0.1/",
    "http://192.168.1.10/",
    "http://0.0.0.0/",
    "http://[::2]/",
    "http://example.com/",
    "http://localhost.example.com/",
    "http://127.0.0.1.nip.io/",
    "http://my-localhost/",
    "http://1127.0.0.1.example/",
  ])("%s is not loopback", (url) => {
    expect(isLoopback(new URL(url))).toBe(false);
  });
});

describe("insecureReason", () => {
  it.each(["https://auth.example.com/realms/acme", "https://10.0.0.1/token", "https://localhost/", "HTTPS://AUTH.EXAMPLE.COM/"])(
    "allows https: %s",
    (url) => {
      expect(insecureReason(new URL(url))).toBeUndefined();
    },
  );

  it.each(["http://127.0.0.1:45029/token", "http://localhost:8080/", "http://[::1]/"])("allows plain http to loopback: %s", (url) => {
    expect(insecureReason(new URL(url))).toBeUndefined();
  });

  it.each(["http://auth.example.com/realms/acme", "http://10.0.0.5:8080/token", "http://localhost.example.com/", "http://[::2]/"])(
    "refuses plain http to a network host: %s",
    (url) => {
      const u = new URL(url);
      const reason = insecureReason(u);
      expect(reason).toBe(`http://${u.host} is not https (plain http is only allowed to loopback addresses, for local tests)`);
    },
  );

  it.each(["ftp://localhost/token", "ws://127.0.0.1/", "file:///etc/passwd", "data:text/plain,x"])(
    "refuses other schemes, even to loopback: %s",
    (url) => {
      const reason = insecureReason(new URL(url));
      expect(reason).toBeDefined();
      expect(reason).toMatch(/is not https/);
    },
  );

  it("never echoes credentials, path or query in the reason", () => {
    const reason = insecureReason(new URL("http://user:p4ssw0rd@auth.example.com:8080/realms/acme/token?client_secret=s3cr3t#frag")) ?? "";
    expect(reason.startsWith("http://auth.example.com:8080 is not https")).toBe(true);
    for (const part of ["user", "p4ssw0rd", "realms", "client_secret", "s3cr3t", "frag"]) expect(reason).not.toContain(part);
  });
});

describe("insecureMetadataReason", () => {
  it.each([
    "http://metadata.google.internal",
    "http://METADATA.google.internal/x",
    "http://169.254.169.254",
    "http://127.0.0.1:9000",
    "https://metadata.example.com",
  ])("%s may carry the metadata server's answer", (url) => {
    expect(insecureMetadataReason(new URL(url))).toBeUndefined();
  });

  it.each(["http://metadata", "http://metadata.google.internal.evil.example", "http://169.254.169.253", "http://10.0.0.1"])(
    "%s is refused",
    (url) => {
      expect(insecureMetadataReason(new URL(url))).toMatch(
        /is not https \(plain http is only allowed to the metadata server, metadata\.google\.internal or 169\.254\.169\.254, and to loopback addresses\)$/,
      );
    },
  );

  it("does not widen the general rule", () => {
    expect(insecureReason(new URL("http://metadata.google.internal"))).toBeDefined();
  });
});
