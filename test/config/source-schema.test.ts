/** The schemas of the sources added for other platforms: defaults, required fields, transport rules, messages. */
import { describe, expect, it } from "vitest";

import { parseOAuth2Block } from "../../src/config/parse.js";
import { asOpencodeReadsIt } from "../support/harness.js";
import { DEFAULT_ID_TOKEN_VAR, DEFAULT_KUBERNETES_TOKEN_PATH } from "../../src/config/defaults.js";
import { subjectTokenSourceSchema } from "../../src/config/source-schema.js";

const parse = (source: unknown) => subjectTokenSourceSchema.safeParse(source);
const ok = (source: unknown) => {
  const result = parse(source);
  expect(result.success, result.success ? "" : JSON.stringify(result.error.issues)).toBe(true);
  return result.data;
};
const issues = (source: unknown) => {
  const result = parse(source);
  expect(result.success, "the source should be refused").toBe(false);
  return (result.error?.issues ?? []).map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
};

describe("platform sources", () => {
  it("circleci and bitbucket take an optional audience only", () => {
    expect(ok({ type: "circleci" })).toEqual({ type: "circleci" });
    expect(ok({ type: "bitbucket", audience: "ari:cloud:bitbucket::workspace/x" })).toEqual({
      type: "bitbucket",
      audience: "ari:cloud:bitbucket::workspace/x",
    });
    expect(issues({ type: "bitbucket", oidc: true })).toEqual([{ path: "", message: 'Unrecognized key: "oidc"' }]);
  });

  it("buildkite: lifetimeSeconds is a positive whole number; timeoutSeconds defaults to 30 s, for the agent's own retries", () => {
    expect(ok({ type: "buildkite", audience: "a", lifetimeSeconds: 600 })).toEqual({
      type: "buildkite",
      audience: "a",
      lifetimeSeconds: 600,
      timeoutSeconds: 30,
    });
    expect(ok({ type: "buildkite", timeoutSeconds: 0.5 })).toEqual({ type: "buildkite", timeoutSeconds: 0.5 });
    expect(issues({ type: "buildkite", timeoutSeconds: 121 })).toEqual([
      { path: "timeoutSeconds", message: "timeoutSeconds must be at most 120" },
    ]);
    expect(issues({ type: "buildkite", lifetimeSeconds: 1.5 })).toEqual([
      { path: "lifetimeSeconds", message: "lifetimeSeconds must be a whole number of seconds" },
    ]);
    expect(issues({ type: "buildkite", lifetimeSeconds: 0 })).toEqual([
      { path: "lifetimeSeconds", message: "lifetimeSeconds must be more than 0" },
    ]);
  });

  it("buildkite: claims is a list of Buildkite's optional claims, as an array or a string", () => {
    expect(ok({ type: "buildkite", claims: ["organization_id", "pipeline_id"] })).toMatchObject({
      claims: ["organization_id", "pipeline_id"],
    });
    expect(ok({ type: "buildkite", claims: "organization_id, pipeline_id" })).toMatchObject({ claims: ["organization_id", "pipeline_id"] });
    expect(ok({ type: "buildkite", claims: "organization_id organization_id agent_tag:queue" })).toMatchObject({
      claims: ["organization_id", "agent_tag:queue"],
    });
    const LIST = "organization_id, pipeline_id, build_id, cluster_id, cluster_name, queue_id, queue_key, agent_tag:<name>";
    expect(issues({ type: "buildkite", claims: ["organizationid"] })).toEqual([
      { path: "claims", message: `claims must list Buildkite's optional claims (${LIST}): "organizationid" is not one` },
    ]);
    expect(issues({ type: "buildkite", claims: ["organization_id", "sub", "agent_tag:"] })).toEqual([
      { path: "claims", message: `claims must list Buildkite's optional claims (${LIST}): "sub" is not one` },
      { path: "claims", message: `claims must list Buildkite's optional claims (${LIST}): "agent_tag:" is not one` },
    ]);
    expect(issues({ type: "buildkite", claims: 7 })).toEqual([
      { path: "claims", message: "claims must be an array of strings or a space/comma-separated string" },
    ]);
  });

  it("azure_pipelines: serviceConnectionId is optional (the pipeline's own token), but not empty when given", () => {
    expect(ok({ type: "azure_pipelines", serviceConnectionId: " 3f2a " })).toEqual({
      type: "azure_pipelines",
      serviceConnectionId: "3f2a",
    });
    expect(ok({ type: "azure_pipelines" })).toEqual({ type: "azure_pipelines" });
    // An unset {env:VAR} must not silently switch from a service connection's identity to the pipeline's.
    expect(issues({ type: "azure_pipelines", serviceConnectionId: " " })).toEqual([
      {
        path: "serviceConnectionId",
        message: "serviceConnectionId must not be empty (if it comes from {env:VAR}, check that VAR is set in the job)",
      },
    ]);
  });

  it("kubernetes: path defaults to the documented projected-token path", () => {
    expect(ok({ type: "kubernetes" })).toEqual({ type: "kubernetes", path: DEFAULT_KUBERNETES_TOKEN_PATH });
    expect(ok({ type: "kubernetes", path: "/var/run/secrets/tokens/idp" })).toEqual({
      type: "kubernetes",
      path: "/var/run/secrets/tokens/idp",
    });
  });

  it("gcp_metadata: audience is required; metadataBaseUrl is https, loopback, or the metadata server over http", () => {
    expect(issues({ type: "gcp_metadata" })).toEqual([{ path: "audience", message: "audience is required" }]);
    for (const url of [
      "http://metadata.google.internal",
      "http://169.254.169.254",
      "http://127.0.0.1:8080",
      "https://metadata.example.com",
    ]) {
      expect(ok({ type: "gcp_metadata", audience: "a", metadataBaseUrl: url })).toMatchObject({ metadataBaseUrl: url });
    }
    expect(issues({ type: "gcp_metadata", audience: "a", metadataBaseUrl: "http://metadata.example.com" })).toEqual([
      {
        path: "metadataBaseUrl",
        message:
          "http://metadata.example.com is not https (plain http is only allowed to the metadata server, metadata.google.internal or 169.254.169.254, and to loopback addresses); a token must not travel in clear text",
      },
    ]);
  });
});

describe("url", () => {
  it('defaults to format "text"; json needs a field, text refuses one', () => {
    expect(ok({ type: "url", url: "https://tokens.example.com/ci" })).toEqual({
      type: "url",
      url: "https://tokens.example.com/ci",
      format: "text",
    });
    expect(ok({ type: "url", url: "https://tokens.example.com/ci", format: "json", field: "data.token" })).toMatchObject({
      format: "json",
      field: "data.token",
    });
    expect(issues({ type: "url", url: "https://tokens.example.com/ci", format: "json" })).toEqual([
      { path: "field", message: 'field is required with format "json" (the name of the field that holds the token)' },
    ]);
    expect(issues({ type: "url", url: "https://tokens.example.com/ci", field: "token" })).toEqual([
      { path: "field", message: 'field only applies to format "json"' },
    ]);
    expect(issues({ type: "url", url: "https://tokens.example.com/ci", format: "xml" })).toEqual([
      { path: "format", message: 'format must be "text" or "json"' },
    ]);
  });

  it("refuses plain http except to loopback, and non-http URLs", () => {
    expect(ok({ type: "url", url: "http://127.0.0.1:9000/token" })).toMatchObject({ url: "http://127.0.0.1:9000/token" });
    expect(issues({ type: "url", url: "http://tokens.example.com/ci" })).toEqual([
      {
        path: "url",
        message:
          "http://tokens.example.com is not https (plain http is only allowed to loopback addresses, for local tests); a token must not travel in clear text",
      },
    ]);
    expect(issues({ type: "url", url: "file:///etc/passwd" })).toEqual([{ path: "url", message: "url must be an absolute http(s) URL" }]);
  });

  it("headers: names must be header names; values must not be empty (an unset {env:VAR})", () => {
    expect(ok({ type: "url", url: "https://t.example/x", headers: { Authorization: "Bearer abc" } })).toMatchObject({
      headers: { Authorization: "Bearer abc" },
    });
    expect(issues({ type: "url", url: "https://t.example/x", headers: "Authorization: x" })).toEqual([
      { path: "headers", message: 'headers must be an object such as { "Authorization": "Bearer {env:TOKEN_SERVICE_TOKEN}" }' },
    ]);
    expect(issues({ type: "url", url: "https://t.example/x", headers: { "Bad Header": "x" } })).toEqual([
      { path: "headers.Bad Header", message: "headers keys must be HTTP header names (letters, digits and !#$%&'*+.^_`|~-)" },
    ]);
    const block = {
      issuer: "https://auth.example.com",
      clientId: "c",
      subjectTokenSource: { type: "url", url: "https://t.example/x", headers: { "X-Token": "{env:UNSET}" } },
    };
    const parsed = parseOAuth2Block("miaou", asOpencodeReadsIt(block, {}), {});
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.issues).toEqual([
        {
          path: "oauth2.subjectTokenSource.headers.X-Token",
          message: "headers value must not be empty (if it comes from {env:VAR}, check that VAR is set in the job)",
        },
      ]);
    }
  });
});

describe("exec", () => {
  it("takes a command array and a bounded timeout (default 10 s)", () => {
    expect(ok({ type: "exec", command: ["/usr/local/bin/mint", "--aud", "x"] })).toEqual({
      type: "exec",
      command: ["/usr/local/bin/mint", "--aud", "x"],
      timeoutSeconds: 10,
    });
    expect(issues({ type: "exec", command: [] })).toEqual([{ path: "command", message: "command must name a program" }]);
    expect(issues({ type: "exec", command: "mint --aud x" })).toEqual([
      { path: "command", message: 'command must be an array such as ["/usr/local/bin/mint-token", "--audience", "…"]' },
    ]);
    expect(issues({ type: "exec", command: ["mint"], timeoutSeconds: 600 })).toEqual([
      { path: "timeoutSeconds", message: "timeoutSeconds must be at most 120" },
    ]);
  });
});

describe("auto", () => {
  it("defaults the GitLab variable and the Kubernetes path; serviceConnectionId is optional", () => {
    expect(ok({ type: "auto" })).toEqual({ type: "auto", var: DEFAULT_ID_TOKEN_VAR, path: DEFAULT_KUBERNETES_TOKEN_PATH });
    expect(ok({ type: "auto", audience: "a", serviceConnectionId: "sc" })).toMatchObject({ audience: "a", serviceConnectionId: "sc" });
    expect(issues({ type: "auto", command: ["x"] })).toEqual([{ path: "", message: 'Unrecognized key: "command"' }]);
  });
});

describe("auto: serviceConnectionId from {env:VAR}", () => {
  it("an empty value (the variable is only set on Azure) counts as not set", () => {
    const block = {
      issuer: "https://auth.example.com",
      clientId: "c",
      subjectTokenSource: { type: "auto", serviceConnectionId: "{env:AZURE_SC}" },
    };
    const parsed = parseOAuth2Block("miaou", asOpencodeReadsIt(block, {}), {});
    expect(parsed.ok).toBe(true);
    if (parsed.ok)
      expect(parsed.config.subjectTokenSource).toEqual({ type: "auto", var: DEFAULT_ID_TOKEN_VAR, path: DEFAULT_KUBERNETES_TOKEN_PATH });
    const onAzure = parseOAuth2Block("miaou", asOpencodeReadsIt(block, { AZURE_SC: "sc-1" }), {});
    expect(onAzure.ok && onAzure.config.subjectTokenSource).toMatchObject({ serviceConnectionId: "sc-1" });
  });
});
