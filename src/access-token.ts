/** What the chain produces and the caches keep: an access token with an absolute expiry. */

export interface AccessToken {
  /** The bearer value. Secret: never log it. */
  value: string;
  /** Always "Bearer": the only type this plugin puts on a request. */
  tokenType: "Bearer";
  /** Epoch ms when it was issued (as seen here). */
  issuedAt: number;
  /** Epoch ms when it stops being valid. */
  expiresAt: number;
  /** Where the expiry came from; `default` means the grant assumed a lifetime (DEFAULT_LIFETIME_SECONDS in grant/grant.ts). */
  expirySource: "expires_in" | "jwt_exp" | "default" | "expire_time";
  scope: string | undefined;
}
