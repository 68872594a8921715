/**
 * Every default of the `oauth2` block, in one place. The schema applies them (schema.ts, source-schema.ts), so
 * code that receives a validated block never needs a fallback of its own; the docs quote these values.
 */

/** `timeoutSeconds`: each request to the CI token service and the IdP, headers and body; also `exec`'s limit. */
export const DEFAULT_TIMEOUT_SECONDS = 10;

/**
 * `subjectTokenSource.timeoutSeconds` of `buildkite` (and `auto` on Buildkite): the limit for `buildkite-agent oidc
 * request-token`, which retries by itself, up to 5 attempts with waits of 1, 2, 4 and 8 s on 429, 5xx and network
 * errors (buildkite/agent clicommand/oidc_request_token.go; buildkite/roko's Exponential). 30 s lets those 15 s of
 * waits and five quick requests finish, where the 10 s of `timeoutSeconds` would stop the agent after its third try.
 */
export const DEFAULT_BUILDKITE_TIMEOUT_SECONDS = 30;

/** `retry`: attempts in all (the first included), and the time budget of one token request. */
export const DEFAULT_RETRY = { maxAttempts: 4, maxElapsedSeconds: 30 } as const;

/** `authFlow`. */
export const DEFAULT_AUTH_FLOW = "jwt_bearer";

/** `cache`. */
export const DEFAULT_CACHE = "memory";

/** `subjectTokenType` (token_exchange): RFC 8693's type for a JWT. */
export const DEFAULT_SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";

/** `subjectTokenSource.var` of `gitlab` and `auto`: the `id_tokens` variable. */
export const DEFAULT_ID_TOKEN_VAR = "OPENCODE_ID_TOKEN";

/**
 * `subjectTokenSource.path` of `kubernetes` and `auto`: this project's choice, a projected volume mounted at
 * `/var/run/secrets/tokens` (the directory of the Kubernetes docs' example, whose file is `vault-token`) with the
 * projection's `path: oidc-token`. docs/configuration.md#kubernetes shows the pod spec that produces it.
 */
export const DEFAULT_KUBERNETES_TOKEN_PATH = "/var/run/secrets/tokens/oidc-token";

/** The Google Cloud metadata server. Plain http on purpose: see METADATA_SERVER_HOSTS in http/transport.ts. */
export const DEFAULT_METADATA_BASE_URL = "http://metadata.google.internal";

/**
 * `subjectTokenSource.audience` with `authFlow: "client_credentials"`: the audience Microsoft Entra expects of a
 * federated client assertion (its default for a federated identity credential). Set another for another IdP.
 * @see https://learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust
 */
export const DEFAULT_CLIENT_ASSERTION_AUDIENCE = "api://AzureADTokenExchange";

/** Google: the scope of an access token for Google Cloud APIs (Vertex AI among them). */
export const GOOGLE_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** `requestedTokenType` with Google STS: the only type it issues for workload identity federation. */
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

/** `serviceAccountImpersonation.endpoint`: Google's IAM Credentials API. */
export const DEFAULT_IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com";

/** `serviceAccountImpersonation.lifetimeSeconds`: Google's default and, without an org policy, its maximum. */
export const DEFAULT_IMPERSONATION_LIFETIME_SECONDS = 3600;
