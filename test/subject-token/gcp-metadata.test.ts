/**
 * GcpMetadataSource against a fake metadata server on loopback (metadataBaseUrl, GCE_METADATA_IP, GCE_METADATA_HOST).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { SubjectTokenRequestError, SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { GcpMetadataSource } from "../../src/subject-token/gcp-metadata.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { fp, rejectionOf } from "../support/harness.js";
import { startTokenEndpoint, type TokenEndpoint } from "../support/token-endpoint.js";

const AUDIENCE = "https://auth.example.com/realms/acme";
const DEFAULT = "http://metadata.google.internal";
const IDENTITY = "/computeMetadata/v1/instance/service-accounts/default/identity";

let ci: CiIssuer;
let metadata: TokenEndpoint;
let token: string;

beforeAll(async () => {
  ci = await startCiIssuer();
  metadata = await startTokenEndpoint();
  token = await ci.mint({
    aud: AUDIENCE,
    style: "plain",
    claims: { iss: "https://accounts.google.com", google: { compute_engine: { project_id: "acme-ci" } } },
  });
});

afterAll(async () => {
  await metadata?.close();
  await ci?.close();
});

beforeEach(() => {
  metadata.answer((req) =>
    req.headers["metadata-flavor"] === "Google"
      ? { status: 200, headers: { "metadata-flavor": "Google", "content-type": "text/html" }, body: token }
      : { status: 403, body: "Missing Metadata-Flavor:Google header." },
  );
});

const context = (env: NodeJS.ProcessEnv = {}, fetch: typeof globalThis.fetch = globalThis.fetch): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch,
  timeoutMs: 5000,
});

describe("GcpMetadataSource", () => {
  it("GETs the identity endpoint with audience and format=full, and the Metadata-Flavor header", async () => {
    const source = new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT);
    expect(source.type).toBe("gcp_metadata");
    expect(fp(await source.getSubjectToken(context()))).toBe(fp(token));
    const req = metadata.requests.at(-1);
    expect(req?.method).toBe("GET");
    expect(req?.path).toBe(IDENTITY);
    expect(req?.query).toEqual({ audience: AUDIENCE, format: "full" });
    expect(req?.headers["metadata-flavor"]).toBe("Google");
  });

  it("keeps a path prefix of the base URL", async () => {
    await new GcpMetadataSource(AUDIENCE, `${metadata.origin}/prefix/`, DEFAULT).getSubjectToken(context());
    expect(metadata.requests.at(-1)?.path).toBe(`/prefix${IDENTITY}`);
  });

  it("uses GCE_METADATA_HOST when no base URL is configured; the default is metadata.google.internal over http", async () => {
    const source = new GcpMetadataSource(AUDIENCE, undefined, DEFAULT);
    expect(source.identityUrl({}).origin).toBe("http://metadata.google.internal");
    expect(fp(await source.getSubjectToken(context({ GCE_METADATA_HOST: metadata.origin.replace("http://", "") })))).toBe(fp(token));
  });

  describe("the environment names the metadata server as Google's Node.js client reads it (gcp-metadata getBaseUrl)", () => {
    const source = () => new GcpMetadataSource(AUDIENCE, undefined, DEFAULT);
    const hostPort = () => metadata.origin.replace("http://", "");

    it("GCE_METADATA_IP alone", async () => {
      const before = metadata.requests.length;
      expect(fp(await source().getSubjectToken(context({ GCE_METADATA_IP: hostPort() })))).toBe(fp(token));
      expect(metadata.requests.length).toBe(before + 1);
      expect(source().identityUrl({ GCE_METADATA_IP: "169.254.169.254" }).origin).toBe("http://169.254.169.254");
    });

    it("GCE_METADATA_IP wins over GCE_METADATA_HOST", async () => {
      const before = metadata.requests.length;
      // The host would be refused (plain http to another host): the request goes to the IP, and succeeds.
      expect(fp(await source().getSubjectToken(context({ GCE_METADATA_IP: hostPort(), GCE_METADATA_HOST: "metadata.example.com" })))).toBe(
        fp(token),
      );
      expect(metadata.requests.length).toBe(before + 1);
      expect(source().identityUrl({ GCE_METADATA_IP: "169.254.169.254", GCE_METADATA_HOST: "metadata.google.internal" }).origin).toBe(
        "http://169.254.169.254",
      );
    });

    it("a value with a scheme is used as it is, not prefixed with another http://", async () => {
      expect(fp(await source().getSubjectToken(context({ GCE_METADATA_HOST: metadata.origin })))).toBe(fp(token));
      expect(source().identityUrl({ GCE_METADATA_HOST: "https://metadata.example.com" }).href).toBe(
        `https://metadata.example.com${IDENTITY}?audience=${encodeURIComponent(AUDIENCE)}&format=full`,
      );
    });

    it("an empty GCE_METADATA_IP does not count; metadataBaseUrl beats both variables", async () => {
      expect(source().identityUrl({ GCE_METADATA_IP: " ", GCE_METADATA_HOST: "metadata.google.internal" }).origin).toBe(
        "http://metadata.google.internal",
      );
      const configured = new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT);
      expect(configured.identityUrl({ GCE_METADATA_IP: "169.254.169.254", GCE_METADATA_HOST: "metadata.google.internal" }).origin).toBe(
        metadata.origin,
      );
    });

    it("an invalid value: the message names the variable that was read", async () => {
      const ip = (await rejectionOf(
        source().getSubjectToken(context({ GCE_METADATA_IP: "not a host", GCE_METADATA_HOST: "metadata.google.internal" })),
      )) as CiAuthError;
      expect(ip).toBeInstanceOf(SubjectTokenUnavailableError);
      expect(ip.reason).toBe("gcp_metadata subject token: GCE_METADATA_IP is not a valid host name or URL.");
      const host = (await rejectionOf(source().getSubjectToken(context({ GCE_METADATA_HOST: "http://[bad" })))) as CiAuthError;
      expect(host.reason).toBe("gcp_metadata subject token: GCE_METADATA_HOST is not a valid host name or URL.");
    });

    it("plain http to another host named by GCE_METADATA_IP is refused, before sending anything", async () => {
      const before = metadata.requests.length;
      const err = (await rejectionOf(source().getSubjectToken(context({ GCE_METADATA_IP: "10.0.0.9" })))) as CiAuthError;
      expect(err.reason).toBe(
        "gcp_metadata subject token: the metadata server URL: http://10.0.0.9 is not https (plain http is only allowed to the metadata server, metadata.google.internal or 169.254.169.254, and to loopback addresses).",
      );
      expect(metadata.requests.length).toBe(before);
    });
  });

  it("refuses plain http to any other host, before sending anything", async () => {
    const err = (await rejectionOf(
      new GcpMetadataSource(AUDIENCE, undefined, DEFAULT).getSubjectToken(context({ GCE_METADATA_HOST: "metadata.example.com" })),
    )) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      "gcp_metadata subject token: the metadata server URL: http://metadata.example.com is not https (plain http is only allowed to the metadata server, metadata.google.internal or 169.254.169.254, and to loopback addresses).",
    );
  });

  it("a 404 means no service account is attached", async () => {
    metadata.answer(() => ({ status: 404, headers: { "metadata-flavor": "Google" }, body: "Not Found" }));
    const err = (await rejectionOf(new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT).getSubjectToken(context()))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenRequestError);
    expect(err.reason).toMatch(/answered HTTP 404: Not Found\. This machine has no service account attached: attach one to the VM/);
    expect(err.transient).toBe(false);
  });

  it("a 5xx is transient", async () => {
    metadata.answer(() => ({ status: 500, body: "internal" }));
    expect(
      ((await rejectionOf(new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT).getSubjectToken(context()))) as CiAuthError).transient,
    ).toBe(true);
  });

  it("refuses an answer without `Metadata-Flavor: Google` (a proxy or captive portal)", async () => {
    metadata.answer(() => ({ status: 200, body: token }));
    const err = (await rejectionOf(new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT).getSubjectToken(context()))) as CiAuthError;
    expect(err.reason).toBe(
      `gcp_metadata subject token: the answer from ${metadata.origin} lacks the \`Metadata-Flavor: Google\` header, so it is not from the metadata server.`,
    );
    expect(err.message.includes(token)).toBe(false);
  });

  it("off Google Cloud (the host does not resolve): says so, and is not retried", async () => {
    const dns: typeof globalThis.fetch = () =>
      Promise.reject(
        Object.assign(new TypeError("fetch failed"), {
          cause: Object.assign(new Error("getaddrinfo ENOTFOUND metadata.google.internal"), { code: "ENOTFOUND" }),
        }),
      );
    const err = (await rejectionOf(new GcpMetadataSource(AUDIENCE, undefined, DEFAULT).getSubjectToken(context({}, dns)))) as CiAuthError;
    expect(err.reason).toBe(
      "gcp_metadata subject token: metadata.google.internal does not resolve: this does not run on Google Cloud. Use the source of the platform the job runs on, or set metadataBaseUrl.",
    );
    expect(err.transient).toBe(false);
  });

  it("another network failure is transient", async () => {
    const reset: typeof globalThis.fetch = () =>
      Promise.reject(
        Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) }),
      );
    const err = (await rejectionOf(new GcpMetadataSource(AUDIENCE, undefined, DEFAULT).getSubjectToken(context({}, reset)))) as CiAuthError;
    expect(err.reason).toBe(
      "gcp_metadata subject token: could not reach the metadata server at http://metadata.google.internal (TypeError ECONNRESET).",
    );
    expect(err.transient).toBe(true);
  });

  it("has no cache identity: the machine does not identify a job", async () => {
    expect(await new GcpMetadataSource(AUDIENCE, metadata.origin, DEFAULT).cacheIdentity()).toBeUndefined();
  });
});
