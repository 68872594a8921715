/**
 * `opencode-ci-auth/lib`: the pieces behind the plugin, for scripts, the CLI and other tools.
 * Every export is named here on purpose (no `export *`), so the public surface is visible at a glance.
 */
export { createTokenProvider, TokenProvider, type TokenProviderOptions } from "./token-provider.js";
export { TokenCache, refreshAt, MAX_REFRESH_MARGIN_MS, type TokenCacheOptions } from "./cache/token-cache.js";
export { requestAccessToken, resolveExpiry, GRANT_TYPES, DEFAULT_LIFETIME_SECONDS, type AccessToken } from "./grant/grant.js";
export { createGrantClient, resolveAuthMethod } from "./grant/client.js";
export { DEFAULT_TIMEOUT_SECONDS } from "./config/defaults.js";
export { withRetry, backoffDelay, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
export { parseOAuth2Block, parseProviders, type ParsedProvider } from "./config/parse.js";
export { oauth2Schema, SOURCE_TYPES, type OAuth2Config, type OAuth2Input, type SubjectTokenSourceConfig, type AuthFlow } from "./config/schema.js";
export { createSubjectTokenSource } from "./subject-token/create.js";
export { checkSubjectToken, summarizeClaims, SUMMARY_CLAIMS, NESTED_SUMMARY_CLAIMS, CLOCK_SKEW_SECONDS } from "./subject-token/claims.js";
export { ALLOW_EXEC_ENV } from "./subject-token/exec.js";
export { detectPlatformFromEnv, PLATFORM_SIGNALS, type PlatformId } from "./subject-token/detect-platform.js";
export type { SubjectTokenSource, SubjectTokenContext } from "./subject-token/source.js";
export { checkExpectedClaims, formatClaimTable, globMatch, type ClaimCheck, type ExpectClaims } from "./expect-claims.js";
export { createLogger, scrub, type Logger, type LogLevel } from "./log.js";
export {
  CiAuthError,
  ConfigError,
  SubjectTokenUnavailableError,
  SubjectTokenRequestError,
  SubjectTokenInvalidError,
  SubjectTokenClaimsError,
  DiscoveryError,
  GrantRefusedError,
  GrantRequestError,
  TokenResponseError,
  RetriesExhaustedError,
  ProviderUnauthorizedError,
  isCiAuthError,
  type ErrorCode,
  type ConfigIssue,
  type Step,
} from "./errors.js";
