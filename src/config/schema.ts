/**
 * The zod schema of `provider.<id>.options.oauth2`: the single source of truth for what a user may write.
 * Every field has a doc comment; docs/configuration.md mirrors them. Messages say how to fix, not only what is wrong.
 */
import * as z from "zod/mini";
import { insecureReason } from "../http/transport.js";
import { DEFAULT_AUTH_FLOW, DEFAULT_CACHE, DEFAULT_RETRY, DEFAULT_SUBJECT_TOKEN_TYPE, DEFAULT_TIMEOUT_SECONDS } from "./defaults.js";
import {
  ACCESS_TOKEN_TYPE,
  DEFAULT_CLIENT_ASSERTION_AUDIENCE,
  DEFAULT_IAM_CREDENTIALS_URL,
  DEFAULT_IMPERSONATION_LIFETIME_SECONDS,
  GOOGLE_CLOUD_PLATFORM_SCOPE,
} from "./defaults.js";
import {
  ENTRA_MULTI_TENANTS,
  GOOGLE_PROVIDER_AUDIENCE,
  entraTenantOf,
  googleDefaultTokenAudience,
  googleProviderOf,
} from "./cloud-services.js";
import { stringList, text, timeoutSeconds, tokenUrl } from "./fields.js";
import { subjectTokenSourceSchema } from "./source-schema.js";

export { SOURCE_TYPES, subjectTokenSourceSchema, type SubjectTokenSourceConfig } from "./source-schema.js";

const httpsUrl = (field: string) =>
  z.pipe(
    text(field),
    z.url({ protocol: /^https?$/, error: `${field} must be an absolute http(s) URL, e.g. https://auth.example.com/realms/acme` }),
  );

export const AUTH_FLOWS = ["jwt_bearer", "token_exchange", "client_credentials"] as const;
export const AUTH_METHODS = ["client_secret_post", "client_secret_basic", "none", "private_key_jwt"] as const;
export const PRIVATE_KEY_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
export { DEFAULT_SUBJECT_TOKEN_TYPE };

type Block = {
  authFlow: string;
  issuer?: string | undefined;
  tokenEndpoint?: string | undefined;
  clientId?: string | undefined;
  scopes?: string[] | undefined;
  tokenExchangeAudience?: string[] | undefined;
  requestedTokenType?: string | undefined;
  serviceAccountImpersonation?: unknown;
};

/** The rules of the two clouds the plugin speaks to (cloud-services.ts): a block they would refuse is refused here. */
function checkCloudRules(c: Block, ctx: z.core.$RefinementCtx<unknown>): void {
  if (c.authFlow === "client_credentials") {
    for (const field of ["issuer", "tokenEndpoint"] as const) {
      const tenant = entraTenantOf(c[field]);
      if (tenant !== undefined && ENTRA_MULTI_TENANTS.has(tenant.toLowerCase())) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `names the tenant "${tenant}", but Entra's client credentials need your own tenant (its id or a verified domain) in the URL (AADSTS50059)`,
        });
      }
    }
    const entra = entraTenantOf(c.issuer) !== undefined || entraTenantOf(c.tokenEndpoint) !== undefined;
    const scopes: unknown = c.scopes;
    if (entra && !(Array.isArray(scopes) && scopes.some((s) => typeof s === "string" && s.endsWith("/.default")))) {
      ctx.addIssue({
        code: "custom",
        path: ["scopes"],
        message:
          'Entra\'s client credentials take one scope "<resource>/.default", e.g. ["https://cognitiveservices.azure.com/.default"] for Azure OpenAI',
      });
    }
  }
  if (c.authFlow !== "token_exchange") return;
  const audiences: unknown = c.tokenExchangeAudience;
  const list = Array.isArray(audiences) ? audiences.filter((a): a is string => typeof a === "string") : [];
  for (const a of list) {
    if (a.startsWith("//iam.googleapis.com/") && !GOOGLE_PROVIDER_AUDIENCE.test(a)) {
      ctx.addIssue({
        code: "custom",
        path: ["tokenExchangeAudience"],
        message: `"${a}" is not a Google workload identity provider's full name: //iam.googleapis.com/projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`,
      });
    }
  }
  const google = googleProviderOf(list);
  if (google !== undefined && c.clientId !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["clientId"],
      message: "Google STS takes no client: remove clientId (and any client authentication)",
    });
  }
  if (google !== undefined && c.requestedTokenType !== undefined && c.requestedTokenType !== ACCESS_TOKEN_TYPE) {
    ctx.addIssue({
      code: "custom",
      path: ["requestedTokenType"],
      message: `Google STS issues only "${ACCESS_TOKEN_TYPE}": remove requestedTokenType, or set it to that`,
    });
  }
  if (google === undefined && c.serviceAccountImpersonation !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["serviceAccountImpersonation"],
      message:
        "serviceAccountImpersonation needs a Google workload identity provider in tokenExchangeAudience (//iam.googleapis.com/projects/…/providers/…)",
    });
  }
}

/**
 * What the clouds need and the user need not write: the audience of a federated client assertion (Entra's), and
 * for Google STS the requested token type, the cloud-platform scope and the provider's default token audience.
 */
function applyServiceDefaults<C extends Block & { subjectTokenSource: { audience?: string | undefined } }>(c: C): C {
  const source = c.subjectTokenSource;
  if (c.authFlow === "client_credentials" && source.audience === undefined) {
    return { ...c, subjectTokenSource: { ...source, audience: DEFAULT_CLIENT_ASSERTION_AUDIENCE } };
  }
  const google = c.authFlow === "token_exchange" ? googleProviderOf(c.tokenExchangeAudience) : undefined;
  if (google === undefined) return c;
  return {
    ...c,
    requestedTokenType: c.requestedTokenType ?? ACCESS_TOKEN_TYPE,
    scopes: c.scopes?.length ? c.scopes : [GOOGLE_CLOUD_PLATFORM_SCOPE],
    subjectTokenSource: source.audience === undefined ? { ...source, audience: googleDefaultTokenAudience(google) } : source,
  };
}

const fields = z.strictObject({
  /** The IdP's issuer URL; its discovery document gives the token endpoint. Required unless `tokenEndpoint` is set. */
  issuer: z.optional(httpsUrl("issuer")),
  /** The token endpoint. When set, discovery is skipped. */
  tokenEndpoint: z.optional(httpsUrl("tokenEndpoint")),
  /**
   * The OAuth client id registered at the IdP for CI. Required, except with `token_exchange` at a service that
   * takes no client (Google STS): then no client id and no client authentication are sent.
   */
  clientId: z.optional(text("clientId")),
  /** Only for confidential clients. Use `{env:VAR}`; never write the secret into the file. */
  clientSecret: z.optional(text("clientSecret")),
  /** How the client authenticates at the token endpoint. Default: `client_secret_post` with a secret, else `none`. */
  tokenEndpointAuthMethod: z.optional(
    z.enum(AUTH_METHODS, { error: `tokenEndpointAuthMethod must be one of ${AUTH_METHODS.map((m) => `"${m}"`).join(", ")}` }),
  ),
  /** PEM (PKCS#8) private key file for `private_key_jwt`. */
  privateKeyPath: z.optional(text("privateKeyPath")),
  /** `kid` to put in the client assertion header for `private_key_jwt`. */
  privateKeyId: z.optional(text("privateKeyId")),
  /** Signing algorithm of the private key. Default from the key: RS256 (RSA), ES256/ES384/ES512 (EC P-256/P-384/P-521), EdDSA (Ed25519); an RSA-PSS-typed key is refused (use an RSA key with PS256). */
  privateKeyAlg: z.optional(z.enum(PRIVATE_KEY_ALGS, { error: `privateKeyAlg must be one of ${PRIVATE_KEY_ALGS.join(", ")}` })),
  /** Scopes to request; an array or a space/comma-separated string. */
  scopes: z.optional(stringList("scopes")),
  /**
   * `jwt_bearer` (RFC 7523 §2.1: the job's token is the grant), `token_exchange` (RFC 8693), or
   * `client_credentials` (RFC 7523 §2.2: the job's token authenticates the client, as a federated client
   * assertion; Microsoft Entra workload identity federation, Keycloak federated client authentication).
   */
  authFlow: z._default(
    z.enum(AUTH_FLOWS, { error: 'authFlow must be "jwt_bearer", "token_exchange" or "client_credentials"' }),
    DEFAULT_AUTH_FLOW,
  ),
  /** token_exchange: the `audience` parameter(s), i.e. the target service's name at the IdP. */
  tokenExchangeAudience: z.optional(stringList("tokenExchangeAudience")),
  /** token_exchange: the `resource` parameter(s), absolute URIs of the target service. */
  tokenExchangeResource: z.optional(stringList("tokenExchangeResource")),
  /** token_exchange: the subject token's type. Default: `urn:ietf:params:oauth:token-type:jwt` (DEFAULT_SUBJECT_TOKEN_TYPE). */
  subjectTokenType: z.optional(text("subjectTokenType")),
  /** token_exchange: the requested token type, when the IdP needs one. */
  requestedTokenType: z.optional(text("requestedTokenType")),
  /** Where the job's OIDC token comes from. */
  subjectTokenSource: subjectTokenSourceSchema,
  /** Seconds to wait for each answer (headers and body) from the CI token service and the IdP. */
  timeoutSeconds: timeoutSeconds("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS),
  /**
   * The claims the IdP's trust policy requires, as globs (`*` any run, `?` one character), e.g.
   * `{ "repository": "acme/*", "ref": "refs/heads/main" }`. Checked before every grant: a mismatch fails with a
   * table instead of reaching the IdP. A list of patterns matches when any does.
   */
  expectClaims: z.optional(
    z.record(
      z.string().check(z.trim(), z.minLength(1, { error: "expectClaims keys must be claim names" })),
      z.union(
        [
          z.string().check(z.trim(), z.minLength(1)),
          z
            .array(z.string().check(z.trim(), z.minLength(1)))
            .check(z.minLength(1, { error: "an expectClaims list needs at least one pattern" })),
        ],
        {
          error:
            'each expectClaims value must be a pattern string or a non-empty list of them, e.g. "refs/heads/main" or ["acme/*", "acme-labs/*"]',
        },
      ),
      {
        error: 'expectClaims must be an object such as { "repository": "acme/*", "ref": "refs/heads/main" }',
      },
    ),
  ),
  /**
   * `memory` (default): one token per process. `file`: also share it between the `opencode run` calls of one
   * job through a 0600 file in a per-user cache dir (docs/configuration.md: its risk on shared runners).
   */
  cache: z._default(z.enum(["memory", "file"], { error: 'cache must be "memory" or "file"' }), DEFAULT_CACHE),
  /**
   * token_exchange with Google STS: trade the federated token for a service account's access token
   * (IAM Credentials `generateAccessToken`). Only that final token is cached; its `expireTime` drives the refresh.
   */
  serviceAccountImpersonation: z.optional(
    z.strictObject(
      {
        /** The service account, e.g. `vertex-ci@my-project.iam.gserviceaccount.com`. */
        email: text("serviceAccountImpersonation.email").check(
          z.refine((v) => /^[^@\s/]+@[^@\s/]+$/.test(v), {
            error: "serviceAccountImpersonation.email must be a service account's email, e.g. vertex-ci@my-project.iam.gserviceaccount.com",
          }),
        ),
        /** Lifetime of the service account's token; more than 3600 needs the org policy that allows it. */
        lifetimeSeconds: z._default(
          z
            .int({ error: "serviceAccountImpersonation.lifetimeSeconds must be a whole number of seconds" })
            .check(
              z.minimum(1, { error: "serviceAccountImpersonation.lifetimeSeconds must be at least 1" }),
              z.maximum(43200, { error: "serviceAccountImpersonation.lifetimeSeconds must be at most 43200 (12 hours, Google's maximum)" }),
            ),
          DEFAULT_IMPERSONATION_LIFETIME_SECONDS,
        ),
        /** Scopes of the service account's token. Default: `scopes`, else cloud-platform. */
        scopes: z.optional(stringList("serviceAccountImpersonation.scopes")),
        /** The IAM Credentials API; for tests. */
        endpoint: z._default(tokenUrl("serviceAccountImpersonation.endpoint", insecureReason), DEFAULT_IAM_CREDENTIALS_URL),
      },
      { error: 'serviceAccountImpersonation must be an object such as { "email": "vertex-ci@my-project.iam.gserviceaccount.com" }' },
    ),
  ),
  /**
   * Whether the provider may go without `options.baseURL`. Off: the access token must not go to a host nobody
   * wrote down. On: the provider's SDK chooses the URL (its default host, or one it builds from other options,
   * such as the `azure` provider's `resourceName`), and the token goes there.
   */
  allowMissingBaseURL: z._default(z.boolean({ error: "allowMissingBaseURL must be true or false" }), false),
  /** Retries of transient failures (network, timeout, 5xx, 429) at the CI token service and the IdP. */
  retry: z.prefault(
    z.strictObject(
      {
        /** Attempts in all, the first included; 1 disables retries. */
        maxAttempts: z._default(
          z
            .int({ error: "retry.maxAttempts must be a whole number" })
            .check(
              z.minimum(1, { error: "retry.maxAttempts must be at least 1" }),
              z.maximum(10, { error: "retry.maxAttempts must be at most 10" }),
            ),
          DEFAULT_RETRY.maxAttempts,
        ),
        /** Budget for all attempts and waits of one token request together. */
        maxElapsedSeconds: z._default(
          z
            .number({ error: "retry.maxElapsedSeconds must be a number of seconds" })
            .check(
              z.minimum(0, { error: "retry.maxElapsedSeconds must be 0 or more" }),
              z.maximum(600, { error: "retry.maxElapsedSeconds must be at most 600" }),
            ),
          DEFAULT_RETRY.maxElapsedSeconds,
        ),
      },
      { error: 'retry must be an object such as { "maxAttempts": 4, "maxElapsedSeconds": 30 }' },
    ),
    {},
  ),
});

export const oauth2Schema = z.pipe(
  fields.check(
    z.superRefine(
      (c, ctx) => {
        for (const field of ["issuer", "tokenEndpoint"] as const) {
          const value = c[field];
          // Other schemes already failed the URL check above; only plain http needs the loopback rule.
          const insecure =
            typeof value === "string" && value.startsWith("http:") && URL.canParse(value) ? insecureReason(new URL(value)) : undefined;
          if (insecure) ctx.addIssue({ code: "custom", path: [field], message: `${insecure}; a token must not travel in clear text` });
        }
        if (!c.issuer && !c.tokenEndpoint) {
          ctx.addIssue({ code: "custom", path: ["issuer"], message: "issuer is required (or set tokenEndpoint to skip discovery)" });
        }
        const method = c.tokenEndpointAuthMethod;
        if (c.authFlow === "client_credentials") {
          // RFC 7523 §2.2: the job's token is the client's authentication; no other may be configured beside it.
          for (const field of ["clientSecret", "tokenEndpointAuthMethod", "privateKeyPath", "privateKeyId", "privateKeyAlg"] as const) {
            if (c[field] !== undefined) {
              ctx.addIssue({
                code: "custom",
                path: [field],
                message: `${field} is not used with authFlow "client_credentials": the job's token authenticates the client (a federated client assertion): remove it`,
              });
            }
          }
        } else {
          const method = c.tokenEndpointAuthMethod;
          if ((method === "client_secret_post" || method === "client_secret_basic") && !c.clientSecret) {
            ctx.addIssue({
              code: "custom",
              path: ["clientSecret"],
              message: `clientSecret is required with tokenEndpointAuthMethod "${method}"`,
            });
          }
          if (method === "none" && c.clientSecret) {
            ctx.addIssue({
              code: "custom",
              path: ["clientSecret"],
              message: 'clientSecret is set but tokenEndpointAuthMethod is "none": remove one of them',
            });
          }
          if (method === "private_key_jwt" && !c.privateKeyPath) {
            ctx.addIssue({
              code: "custom",
              path: ["privateKeyPath"],
              message: 'privateKeyPath (a PEM PKCS#8 key file) is required with tokenEndpointAuthMethod "private_key_jwt"',
            });
          }
          if (method !== "private_key_jwt") {
            for (const field of ["privateKeyPath", "privateKeyId", "privateKeyAlg"] as const) {
              if (c[field] !== undefined)
                ctx.addIssue({
                  code: "custom",
                  path: [field],
                  message: `${field} is only used with tokenEndpointAuthMethod "private_key_jwt"`,
                });
            }
          }
          if (method === "private_key_jwt" && c.clientSecret) {
            ctx.addIssue({
              code: "custom",
              path: ["clientSecret"],
              message: 'clientSecret is not used with tokenEndpointAuthMethod "private_key_jwt": remove it',
            });
          }
        }
        if (c.clientId === undefined && c.authFlow !== "token_exchange")
          ctx.addIssue({ code: "custom", path: ["clientId"], message: "clientId is required" });
        if (c.clientId === undefined && c.authFlow === "token_exchange" && (c.clientSecret !== undefined || method !== undefined)) {
          ctx.addIssue({
            code: "custom",
            path: ["clientId"],
            message: "clientId is required with clientSecret or tokenEndpointAuthMethod (only a client can authenticate)",
          });
        }
        checkCloudRules(c, ctx);
        if (c.authFlow !== "token_exchange") {
          for (const field of [
            "tokenExchangeAudience",
            "tokenExchangeResource",
            "requestedTokenType",
            "subjectTokenType",
            "serviceAccountImpersonation",
          ] as const) {
            if (c[field] !== undefined) {
              ctx.addIssue({ code: "custom", path: [field], message: `${field} only applies to authFlow "token_exchange"` });
            }
          }
        }
        // Also runs when a field failed (see `when`), so this value may still be the raw input.
        const resources: unknown = c.tokenExchangeResource;
        for (const r of Array.isArray(resources) ? resources : []) {
          if (typeof r === "string" && !URL.canParse(r))
            ctx.addIssue({ code: "custom", path: ["tokenExchangeResource"], message: `"${r}" is not an absolute URI` });
        }
      },
      // zod skips refinements once a field failed; run them anyway so every problem is reported in one pass.
      { when: (payload) => typeof payload.value === "object" && payload.value !== null },
    ),
  ),
  z.transform(applyServiceDefaults),
);

/** The input a user writes. */
export type { OAuth2Input } from "./types.js";
/** The validated, defaulted block. */
export type { OAuth2Config } from "./types.js";
export type AuthFlow = (typeof AUTH_FLOWS)[number];
