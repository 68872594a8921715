/**
 * The zod schema of `oauth2.subjectTokenSource`: one strict object per source type, joined on `type`.
 * Defaults live here and nowhere else; the sources receive the validated values. docs/configuration.md mirrors it.
 */
import { z } from "zod";
import { insecureMetadataReason, insecureReason } from "../http/transport.js";
import { DEFAULT_ID_TOKEN_VAR, DEFAULT_KUBERNETES_TOKEN_PATH, DEFAULT_METADATA_BASE_URL, DEFAULT_TIMEOUT_SECONDS } from "./defaults.js";

export const text = (field: string) =>
  z
    .string({ error: (i) => (i.input === undefined ? `${field} is required` : `${field} must be a string`) })
    .trim()
    .min(1, { error: `${field} must not be empty (if it comes from {env:VAR}, check that VAR is set in the job)` });

/** An absolute http(s) URL that passes `rule` (a transport rule from transport.ts). */
const tokenUrl = (field: string, rule: (url: URL) => string | undefined) =>
  text(field)
    .pipe(z.url({ protocol: /^https?$/, error: `${field} must be an absolute http(s) URL` }))
    .superRefine((value, ctx) => {
      // Runs even when the URL check above failed: only an http(s) URL has a transport rule to break.
      if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) return;
      const insecure = rule(new URL(value));
      if (insecure) ctx.addIssue({ code: "custom", message: `${insecure}; a token must not travel in clear text` });
    });

const audience = text("audience").optional();

// The defaults live in defaults.ts; re-exported for existing importers.
export { DEFAULT_ID_TOKEN_VAR, DEFAULT_KUBERNETES_TOKEN_PATH, DEFAULT_METADATA_BASE_URL };

/** GitHub Actions: asks `ACTIONS_ID_TOKEN_REQUEST_URL` for a token with this audience. */
export const githubActionsSource = z.strictObject({
  type: z.literal("github_actions"),
  /** The `aud` the IdP expects. Omitted: GitHub's default, `https://github.com/<owner>`. */
  audience,
});

/** GitLab CI: reads the JWT that the job's `id_tokens:` keyword put in an environment variable. */
export const gitlabSource = z.strictObject({
  type: z.literal("gitlab"),
  /** The `id_tokens` variable name. */
  var: text("var").default(DEFAULT_ID_TOKEN_VAR),
  /** When set, the token's `aud` is checked locally against it before use. */
  audience,
});

/** CircleCI: `CIRCLE_OIDC_TOKEN_V2`, or `circleci run oidc get` when a custom audience is configured. */
export const circleciSource = z.strictObject({
  type: z.literal("circleci"),
  /** A custom `aud`, requested through the `circleci` CLI. Omitted: the token in the environment (aud = the organization id). */
  audience,
});

/** Buildkite: `buildkite-agent oidc request-token`. */
export const buildkiteSource = z.strictObject({
  type: z.literal("buildkite"),
  /** `--audience`. Omitted: Buildkite's default audience. */
  audience,
  /** `--lifetime` in seconds. Omitted: Buildkite's default. */
  lifetimeSeconds: z
    .int({ error: "lifetimeSeconds must be a whole number of seconds" })
    .positive({ error: "lifetimeSeconds must be more than 0" })
    .optional(),
});

/** Azure Pipelines: the job's OIDC endpoint for a service connection (workload identity federation). */
export const azurePipelinesSource = z.strictObject({
  type: z.literal("azure_pipelines"),
  /** The id (a GUID) of the service connection whose federated identity the token is for. */
  serviceConnectionId: text("serviceConnectionId"),
  /** When set, the token's `aud` is checked locally (Azure issues `api://AzureADTokenExchange`). */
  audience,
});

/** Bitbucket Pipelines: `BITBUCKET_STEP_OIDC_TOKEN`, set for steps with `oidc: true`. */
export const bitbucketSource = z.strictObject({
  type: z.literal("bitbucket"),
  /** When set, the token's `aud` is checked locally. */
  audience,
});

/** Kubernetes: a projected service-account token file, re-read for every grant (kubelet rotates it). */
export const kubernetesSource = z.strictObject({
  type: z.literal("kubernetes"),
  path: text("path").default(DEFAULT_KUBERNETES_TOKEN_PATH),
  /** When set, the token's `aud` is checked locally: set it to the projection's `audience`. */
  audience,
});

/** Google Cloud: the metadata server's identity token for the attached service account. */
export const gcpMetadataSource = z.strictObject({
  type: z.literal("gcp_metadata"),
  /** The `aud` to request; the metadata server requires one. */
  audience: text("audience"),
  /** The metadata server; https, loopback (tests) or the metadata server itself over http. */
  metadataBaseUrl: tokenUrl("metadataBaseUrl", insecureMetadataReason).optional(),
});

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Any URL that answers a GET with the token, as text or inside JSON. */
export const urlSource = z
  .strictObject({
    type: z.literal("url"),
    url: tokenUrl("url", insecureReason),
    /** Request headers; values may use `{env:VAR}` (substituted before validation). */
    headers: z
      .record(z.string().regex(HEADER_NAME), text("headers value"), {
        error: (issue) =>
          issue.code === "invalid_key"
            ? "headers keys must be HTTP header names (letters, digits and !#$%&'*+.^_`|~-)"
            : 'headers must be an object such as { "Authorization": "Bearer {env:TOKEN_SERVICE_TOKEN}" }',
      })
      .optional(),
    /** `text`: the body is the JWT. `json`: the JWT is at `field` in a JSON body. */
    format: z.enum(["text", "json"], { error: 'format must be "text" or "json"' }).default("text"),
    /** With `json`: the field that holds the JWT; a dotted path such as `data.token` reaches into objects. */
    field: text("field").optional(),
    audience,
  })
  .superRefine((c, ctx) => {
    if (c.format === "json" && c.field === undefined) ctx.addIssue({ code: "custom", path: ["field"], message: 'field is required with format "json" (the name of the field that holds the token)' });
    if (c.format === "text" && c.field !== undefined) ctx.addIssue({ code: "custom", path: ["field"], message: 'field only applies to format "json"' });
  });

/** A program that prints the token; refused unless the job's environment allows it (see exec.ts). */
export const execSource = z.strictObject({
  type: z.literal("exec"),
  /** The program and its arguments, run without a shell. */
  command: z.array(text("command item"), { error: 'command must be an array such as ["/usr/local/bin/mint-token", "--audience", "…"]' }).min(1, {
    error: "command must name a program",
  }),
  /** Limit for the program to finish. */
  timeoutSeconds: z
    .number({ error: "timeoutSeconds must be a number of seconds" })
    .positive({ error: "timeoutSeconds must be more than 0" })
    .max(120, { error: "timeoutSeconds must be at most 120" })
    .default(DEFAULT_TIMEOUT_SECONDS),
  audience,
});

/** Detect the platform from the environment and use its source with these settings. */
export const autoSource = z.strictObject({
  type: z.literal("auto"),
  /** Requested (GitHub, CircleCI, Buildkite, Google Cloud) or checked locally (the others). */
  audience,
  /** GitLab only: the `id_tokens` variable. */
  var: text("var").default(DEFAULT_ID_TOKEN_VAR),
  /**
   * Azure Pipelines only: the service connection id. Empty counts as not set, so `{env:VAR}` with a variable only
   * the Azure pipeline defines keeps the block valid on the other platforms.
   */
  serviceConnectionId: z
    .string({ error: "serviceConnectionId must be a string" })
    .trim()
    .optional()
    .transform((v) => (v ? v : undefined)),
  /** Kubernetes only: the projected token file. */
  path: text("path").default(DEFAULT_KUBERNETES_TOKEN_PATH),
});

/** A file holding the JWT, re-read for every grant (e.g. a rotated projected token). */
export const fileSource = z.strictObject({
  type: z.literal("file"),
  path: text("path"),
  audience,
});

/** An environment variable holding the JWT. */
export const envSource = z.strictObject({
  type: z.literal("env"),
  var: text("var"),
  audience,
});

const SOURCES = [
  githubActionsSource,
  gitlabSource,
  circleciSource,
  buildkiteSource,
  azurePipelinesSource,
  bitbucketSource,
  kubernetesSource,
  gcpMetadataSource,
  urlSource,
  execSource,
  autoSource,
  fileSource,
  envSource,
] as const;

/** Every `type` a source may have, in the order the docs list them. */
export const SOURCE_TYPES = [
  "github_actions",
  "gitlab",
  "circleci",
  "buildkite",
  "azure_pipelines",
  "bitbucket",
  "kubernetes",
  "gcp_metadata",
  "url",
  "exec",
  "auto",
  "file",
  "env",
] as const satisfies ReadonlyArray<z.output<(typeof SOURCES)[number]>["type"]>;

export const subjectTokenSourceSchema = z.discriminatedUnion("type", SOURCES, {
  error: (issue) =>
    issue.code === "invalid_union"
      ? `type must be one of ${SOURCE_TYPES.map((t) => `"${t}"`).join(", ")}`
      : 'subjectTokenSource must be an object such as { "type": "github_actions", "audience": "…" }',
});

export type SubjectTokenSourceConfig = z.output<typeof subjectTokenSourceSchema>;
