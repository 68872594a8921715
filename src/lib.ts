/**
 * `opencode-ci-auth/lib`: the plugin's chain for scripts and tools, and what the docs promise about it: the token
 * provider, the config parser, the errors and their codes, and their types. Everything else is internal and may
 * change in any release. Every export is named here on purpose (no `export *`).
 */
export { createTokenProvider, type TokenProvider, type TokenProviderOptions, type TokenWitness } from "./token-provider.js";
export type { AccessToken } from "./access-token.js";
export { parseOAuth2Block, parseProvider, parseProviders, type ParsedProvider, type ProviderEntry } from "./config/parse.js";
export { substituteEnvReferences } from "./config/env-references.js";
export type { AuthFlow, OAuth2Config, OAuth2Input, SubjectTokenSourceConfig } from "./config/types.js";
export type { SubjectTokenSource, SubjectTokenContext } from "./subject-token/source.js";
export { createLogger, type Logger, type LogLevel } from "./log.js";
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
  ImpersonationError,
  isCiAuthError,
  type ErrorCode,
  type ConfigIssue,
  type Step,
} from "./errors.js";
