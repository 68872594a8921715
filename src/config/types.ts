/**
 * The configuration types, written out: what the `oauth2` block may hold (`OAuth2Input`) and what parsing makes of it
 * (`OAuth2Config`, defaults filled in). They are the zod schemas' types (config/schema.ts, subject-token/sources.ts)
 * spelled out, so that the published declarations do not import zod, which the bundle hides from consumers.
 * test/config/types.test.ts fails when they drift from the schemas.
 */

/** One `subjectTokenSource` after parsing, by `type`. */
export type SubjectTokenSourceConfig =
  | {
      type: "github_actions";
      audience?: string | undefined;
    }
  | {
      type: "gitlab";
      var: string;
      audience?: string | undefined;
    }
  | {
      type: "circleci";
      audience?: string | undefined;
    }
  | {
      type: "buildkite";
      timeoutSeconds: number;
      audience?: string | undefined;
      lifetimeSeconds?: number | undefined;
      claims?: string[] | undefined;
    }
  | {
      type: "azure_pipelines";
      serviceConnectionId?: string | undefined;
      audience?: string | undefined;
    }
  | {
      type: "bitbucket";
      audience?: string | undefined;
    }
  | {
      type: "kubernetes";
      path: string;
      audience?: string | undefined;
    }
  | {
      type: "gcp_metadata";
      audience: string;
      metadataBaseUrl?: string | undefined;
    }
  | {
      type: "url";
      url: string;
      format: "text" | "json";
      headers?: Record<string, string> | undefined;
      field?: string | undefined;
      audience?: string | undefined;
    }
  | {
      type: "exec";
      command: string[];
      timeoutSeconds: number;
      audience?: string | undefined;
    }
  | {
      type: "auto";
      var: string;
      serviceConnectionId: string | undefined;
      path: string;
      audience?: string | undefined;
    }
  | {
      type: "file";
      path: string;
      audience?: string | undefined;
    }
  | {
      type: "env";
      var: string;
      audience?: string | undefined;
    };

/** The `oauth2` block as a user writes it. */
export type OAuth2Input = {
  subjectTokenSource:
    | {
        type: "github_actions";
        audience?: string | undefined;
      }
    | {
        type: "gitlab";
        var?: string | undefined;
        audience?: string | undefined;
      }
    | {
        type: "circleci";
        audience?: string | undefined;
      }
    | {
        type: "buildkite";
        audience?: string | undefined;
        lifetimeSeconds?: number | undefined;
        claims?: string | string[] | undefined;
        timeoutSeconds?: number | undefined;
      }
    | {
        type: "azure_pipelines";
        serviceConnectionId?: string | undefined;
        audience?: string | undefined;
      }
    | {
        type: "bitbucket";
        audience?: string | undefined;
      }
    | {
        type: "kubernetes";
        path?: string | undefined;
        audience?: string | undefined;
      }
    | {
        type: "gcp_metadata";
        audience: string;
        metadataBaseUrl?: string | undefined;
      }
    | {
        type: "url";
        url: string;
        headers?: Record<string, string> | undefined;
        format?: "text" | "json" | undefined;
        field?: string | undefined;
        audience?: string | undefined;
      }
    | {
        type: "exec";
        command: string[];
        timeoutSeconds?: number | undefined;
        audience?: string | undefined;
      }
    | {
        type: "auto";
        audience?: string | undefined;
        var?: string | undefined;
        serviceConnectionId?: string | undefined;
        path?: string | undefined;
      }
    | {
        type: "file";
        path: string;
        audience?: string | undefined;
      }
    | {
        type: "env";
        var: string;
        audience?: string | undefined;
      };
  issuer?: string | undefined;
  tokenEndpoint?: string | undefined;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  tokenEndpointAuthMethod?: "client_secret_post" | "client_secret_basic" | "none" | "private_key_jwt" | undefined;
  privateKeyPath?: string | undefined;
  privateKeyId?: string | undefined;
  privateKeyAlg?: "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512" | "EdDSA" | undefined;
  scopes?: string | string[] | undefined;
  authFlow?: "jwt_bearer" | "token_exchange" | "client_credentials" | undefined;
  tokenExchangeAudience?: string | string[] | undefined;
  tokenExchangeResource?: string | string[] | undefined;
  subjectTokenType?: string | undefined;
  requestedTokenType?: string | undefined;
  timeoutSeconds?: number | undefined;
  expectClaims?: Record<string, string | string[]> | undefined;
  cache?: "file" | "memory" | undefined;
  serviceAccountImpersonation?:
    | {
        email: string;
        lifetimeSeconds?: number | undefined;
        scopes?: string | string[] | undefined;
        endpoint?: string | undefined;
      }
    | undefined;
  allowMissingBaseURL?: boolean | undefined;
  retry?:
    | {
        maxAttempts?: number | undefined;
        maxElapsedSeconds?: number | undefined;
      }
    | undefined;
};

/** One of the grants, `authFlow`. */
export type AuthFlow = OAuth2Config["authFlow"];

/** The `oauth2` block after parsing, with its defaults. */
export type OAuth2Config = {
  authFlow: "jwt_bearer" | "token_exchange" | "client_credentials";
  subjectTokenSource: SubjectTokenSourceConfig;
  timeoutSeconds: number;
  cache: "file" | "memory";
  allowMissingBaseURL: boolean;
  retry: {
    maxAttempts: number;
    maxElapsedSeconds: number;
  };
  issuer?: string | undefined;
  tokenEndpoint?: string | undefined;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  tokenEndpointAuthMethod?: "client_secret_post" | "client_secret_basic" | "none" | "private_key_jwt" | undefined;
  privateKeyPath?: string | undefined;
  privateKeyId?: string | undefined;
  privateKeyAlg?: "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512" | "EdDSA" | undefined;
  scopes?: string[] | undefined;
  tokenExchangeAudience?: string[] | undefined;
  tokenExchangeResource?: string[] | undefined;
  subjectTokenType?: string | undefined;
  requestedTokenType?: string | undefined;
  expectClaims?: Record<string, string | string[]> | undefined;
  serviceAccountImpersonation?:
    | {
        email: string;
        lifetimeSeconds: number;
        endpoint: string;
        scopes?: string[] | undefined;
      }
    | undefined;
};
