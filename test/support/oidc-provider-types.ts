/**
 * Narrow local types for the parts of oidc-provider 9 the test IdP uses.
 *
 * oidc-provider ships no TypeScript declarations (and @types/oidc-provider is not
 * installed), so `idp.ts` imports the module dynamically and casts it to
 * {@link OidcProviderModule}. Only what the IdP touches is described here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** An oidc-provider error instance: `error`/`error_description` are what the client sees when `expose` is true. */
export interface OidcError extends Error {
  error: string;
  error_description?: string;
  error_detail?: string;
  status: number;
  expose: boolean;
}

export interface OidcClient {
  clientId: string;
  grantTypeAllowed(grantType: string): boolean;
}

/** Request parameters after oidc-provider's allow-listing; repeated params arrive as arrays when allowed as dupes. */
export type OidcParams = Record<string, string | string[] | undefined>;

export interface OidcContext {
  params?: OidcParams;
  client?: OidcClient;
  entity(name: string, value: unknown): void;
}

/** The Koa context as far as the IdP reads and writes it. */
export interface KoaContext {
  method: string;
  path: string;
  status: number;
  body: unknown;
  state: Record<string, unknown>;
  get(header: string): string;
  /** Only defined on routes oidc-provider recognised. */
  readonly oidc?: OidcContext;
}

export type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

export interface AccessTokenInit {
  client: OidcClient;
  accountId?: string;
  gty?: string;
  scope?: string;
  extra?: Record<string, unknown>;
}

export interface AccessTokenInstance {
  readonly jti: string;
  readonly clientId: string;
  readonly expiration: number;
  readonly isExpired: boolean;
  readonly tokenType: string;
  scope?: string;
  save(): Promise<string>;
  destroy(): Promise<void>;
}

export interface AccessTokenClass {
  new (init: AccessTokenInit): AccessTokenInstance;
  find(value: string, opts?: { ignoreExpiration?: boolean }): Promise<AccessTokenInstance | undefined>;
}

export interface ProviderInstance {
  readonly issuer: string;
  readonly AccessToken: AccessTokenClass;
  registerGrantType(
    name: string,
    handler: (ctx: KoaContext & { readonly oidc: OidcContext }) => Promise<void>,
    params?: string | string[],
    dupes?: string | string[],
  ): void;
  use(middleware: KoaMiddleware): this;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): this;
}

export type ErrorWithDescription = new (description?: string) => OidcError;

export interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
  errors: {
    /** Takes a *detail* that is NOT sent to the client; set `error_description` yourself. */
    InvalidGrant: new (detail?: string) => OidcError;
    InvalidRequest: ErrorWithDescription;
    InvalidScope: new (description: string, scope: string) => OidcError;
    UnauthorizedClient: ErrorWithDescription;
  };
}

/** The storage adapter contract (see oidc-provider's `example/my_adapter.js`). */
export interface OidcAdapter {
  upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Record<string, unknown> | undefined>;
  findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
  findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}
