/**
 * A fake IAM Service Account Credentials API on 127.0.0.1 for tests:
 * `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken` with a federated token from the fake STS as
 * Bearer and `{ "scope": [...], "lifetime": "<n>s" }`; answers `{ accessToken, expireTime }` or Google's API error
 * shape `{ error: { code, message, status, details } }`. The real service is never reached; sources are in
 * /work/notes/cloud-research.md.
 *
 * A service account lists the IAM members holding `roles/iam.workloadIdentityUser` on it (`principal://…/subject/…`,
 * `principalSet://…/attribute.<name>/<value>` or `principalSet://…/*`); the federated token's principal and
 * attributes must match one. Issued tokens (`ya29.c.…`) can be checked with {@link FakeIamCredentials.isValidAccessToken}.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";

import { bearerOf, closeServer, isRecord, listen, mediaType, opaqueToken, readBody, sendJson } from "./cloud-http.js";
import { CLOUD_PLATFORM_SCOPE } from "./fake-google-sts.js";
import type { FakeGoogleSts, FederatedToken } from "./fake-google-sts.js";

export const WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser";
const IAM_SCOPE = "https://www.googleapis.com/auth/iam";
const METHOD = "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken";
const SERVICE = "iamcredentials.googleapis.com";
const SIGN_IN_HELP =
  "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

export interface ServiceAccount {
  email: string;
  /** IAM members bound to `roles/iam.workloadIdentityUser` on this account (live list). */
  workloadIdentityUsers: string[];
  /** The org policy `constraints/iam.allowServiceAccountCredentialLifetimeExtension` lists this account (up to 12 h). */
  lifetimeExtension?: boolean;
}

export interface FakeIamCredentialsOptions {
  /** Where federated tokens come from. */
  sts: FakeGoogleSts;
  serviceAccounts: ServiceAccount[];
  now?: () => number;
}

export interface IamRequestRecord {
  method: string;
  path: string;
  /** Decoded service account email from the path. */
  email?: string;
  contentType: string;
  /** Raw Authorization header (sensitive). */
  authorization?: string;
  /** Parsed JSON body. */
  body?: unknown;
  status: number;
  /** `error.status`, e.g. `PERMISSION_DENIED`. */
  errorStatus?: string;
  errorMessage?: string;
}

export interface ServiceAccountToken {
  email: string;
  scopes: string[];
  /** The federated principal that impersonated (shown as delegator in Google's audit logs). */
  delegator: string;
  expiresAt: number;
  revoked: boolean;
}

export interface FakeIamCredentials {
  /** e.g. `http://127.0.0.1:41234` (stands for `https://iamcredentials.googleapis.com`). */
  readonly url: string;
  /** `${url}/v1/projects/-/serviceAccounts/${email}:generateAccessToken` */
  generateAccessTokenUrl(email: string): string;
  readonly serviceAccounts: ServiceAccount[];
  readonly requests: IamRequestRecord[];
  readonly issuedTokens: Map<string, ServiceAccountToken>;
  /** True for a live, unrevoked token this fake issued (for `email` when given). */
  isValidAccessToken(token: string, email?: string): Promise<boolean>;
  revokeAccessToken(token: string): void;
  close(): Promise<void>;
}

class GoogleApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: string,
    message: string,
    readonly details: unknown[] = [],
  ) {
    super(message);
  }
}

function errorInfo(reason: string, domain: string, metadata: Record<string, string>): unknown {
  return { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain, metadata };
}

const PATH = /^\/v1\/projects\/([^/]+)\/serviceAccounts\/([^/:]+):generateAccessToken$/;
const LIFETIME = /^(\d+)(?:\.\d+)?s$/;
const BODY_FIELDS = new Set(["delegates", "scope", "lifetime"]);

/** Does an IAM member string cover this federated identity? */
export function memberMatches(member: string, token: FederatedToken): boolean {
  if (member === token.principal) return true;
  const pool = token.principal.slice("principal://".length).replace(/\/subject\/.*$/, "");
  if (member === `principalSet://${pool}/*`) return true;
  const prefix = `principalSet://${pool}/attribute.`;
  if (!member.startsWith(prefix)) return false;
  const rest = member.slice(prefix.length);
  const slash = rest.indexOf("/");
  return slash > 0 && token.attributes[`attribute.${rest.slice(0, slash)}`] === rest.slice(slash + 1);
}

/** Google's ESF format: seconds, UTC, no fraction (`2021-08-26T00:57:30Z`). */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Starts a fake IAM Credentials API on 127.0.0.1 (random port). */
export async function startFakeIamCredentials(opts: FakeIamCredentialsOptions): Promise<FakeIamCredentials> {
  const now = opts.now ?? Date.now;
  const requests: IamRequestRecord[] = [];
  const issuedTokens = new Map<string, ServiceAccountToken>();
  const server = createServer();
  const { port } = await listen(server);
  const url = `http://127.0.0.1:${port}`;

  function authenticate(req: IncomingMessage): FederatedToken {
    const bearer = bearerOf(req);
    const info = (reason: string): unknown[] => [errorInfo(reason, "googleapis.com", { service: SERVICE, method: METHOD })];
    if (!bearer)
      throw new GoogleApiError(
        401,
        "UNAUTHENTICATED",
        `Request is missing required authentication credential. ${SIGN_IN_HELP}`,
        info("CREDENTIALS_MISSING"),
      );
    const token = opts.sts.federatedTokens.get(bearer);
    // Google gives no ErrorInfo for an unknown token that we could cite; an expired one says ACCESS_TOKEN_EXPIRED.
    if (!token || token.revoked)
      throw new GoogleApiError(401, "UNAUTHENTICATED", `Request had invalid authentication credentials. ${SIGN_IN_HELP}`);
    if (token.expiresAt <= now())
      throw new GoogleApiError(
        401,
        "UNAUTHENTICATED",
        `Request had invalid authentication credentials. ${SIGN_IN_HELP}`,
        info("ACCESS_TOKEN_EXPIRED"),
      );
    if (!token.scopes.includes(CLOUD_PLATFORM_SCOPE) && !token.scopes.includes(IAM_SCOPE)) {
      throw new GoogleApiError(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.", [
        errorInfo("ACCESS_TOKEN_SCOPE_INSUFFICIENT", "googleapis.com", { service: SERVICE, method: METHOD }),
      ]);
    }
    return token;
  }

  function parseBody(contentType: string, raw: string, record: IamRequestRecord): { scope: string[]; lifetimeSeconds: number } {
    if (contentType !== "application/json")
      throw new GoogleApiError(400, "INVALID_ARGUMENT", `Invalid JSON payload received. Unexpected content type "${contentType}".`);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new GoogleApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.");
    }
    record.body = body;
    if (!isRecord(body)) throw new GoogleApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.");
    const unknown = Object.keys(body).find((k) => !BODY_FIELDS.has(k));
    if (unknown) {
      const message = `Invalid JSON payload received. Unknown name "${unknown}": Cannot find field.`;
      throw new GoogleApiError(400, "INVALID_ARGUMENT", message, [
        { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ description: message }] },
      ]);
    }
    const scope = body["scope"];
    // Fake's own wording below: Google documents the rules (scope required; lifetime "<n>s"), not the messages.
    if (!Array.isArray(scope) || scope.length === 0 || scope.some((s) => typeof s !== "string")) {
      throw new GoogleApiError(400, "INVALID_ARGUMENT", 'Scope required: "scope" must be a non-empty list of OAuth scopes.');
    }
    const lifetime = body["lifetime"] ?? "3600s";
    const match = typeof lifetime === "string" ? LIFETIME.exec(lifetime) : null;
    if (!match)
      throw new GoogleApiError(
        400,
        "INVALID_ARGUMENT",
        `Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), "${String(lifetime)}"`,
      );
    return { scope: scope as string[], lifetimeSeconds: Number(match[1]) };
  }

  async function generate(req: IncomingMessage, res: ServerResponse, record: IamRequestRecord): Promise<void> {
    const match = PATH.exec(record.path);
    if (!match) throw new GoogleApiError(404, "NOT_FOUND", `The requested URL ${record.path} was not found on this server.`);
    const [, project, encodedEmail] = match as unknown as [string, string, string];
    const email = decodeURIComponent(encodedEmail);
    record.email = email;
    if (req.method !== "POST") throw new GoogleApiError(405, "METHOD_NOT_ALLOWED", `${req.method ?? ""} is not allowed; use POST.`);
    const raw = await readBody(req);
    const federated = authenticate(req);
    const { scope, lifetimeSeconds } = parseBody(record.contentType, raw, record);
    if (project !== "-") {
      throw new GoogleApiError(
        400,
        "INVALID_ARGUMENT",
        'The project in the resource name must be "-": projects/-/serviceAccounts/{email}.',
      );
    }
    const account = opts.serviceAccounts.find((a) => a.email.toLowerCase() === email.toLowerCase());
    if (!account) throw new GoogleApiError(404, "NOT_FOUND", `Not found; Gaia id not found for email ${email}`);
    if (!account.workloadIdentityUsers.some((m) => memberMatches(m, federated))) {
      throw new GoogleApiError(
        403,
        "PERMISSION_DENIED",
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        [errorInfo("IAM_PERMISSION_DENIED", "iam.googleapis.com", { permission: "iam.serviceAccounts.getAccessToken" })],
      );
    }
    if (lifetimeSeconds === 0) throw new GoogleApiError(400, "INVALID_ARGUMENT", "Lifetime of access token must be larger then zero.");
    if (lifetimeSeconds > (account.lifetimeExtension ? 43_200 : 3600)) {
      throw new GoogleApiError(
        400,
        "INVALID_ARGUMENT",
        account.lifetimeExtension
          ? `Access tokens for service account ${account.email} can not have lifetimes of more than 12 hours.` // fake's own
          : `Access tokens for service account ${account.email} can not have lifetimes of more than 1 hour. Use the Org Policy Constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension to allow up to 12 hours.`,
      );
    }
    const expiresAt = Math.floor(now() / 1000) * 1000 + lifetimeSeconds * 1000;
    const accessToken = opaqueToken("ya29.c.");
    issuedTokens.set(accessToken, { email: account.email, scopes: scope, delegator: federated.principal, expiresAt, revoked: false });
    record.status = 200;
    sendJson(res, 200, { accessToken, expireTime: rfc3339(expiresAt) });
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const record: IamRequestRecord = {
      method: req.method ?? "GET",
      path: new URL(req.url ?? "/", url).pathname,
      contentType: mediaType(req),
      status: 0,
    };
    if (req.headers.authorization !== undefined) record.authorization = req.headers.authorization;
    requests.push(record);
    generate(req, res, record).catch((err: unknown) => {
      const e =
        err instanceof GoogleApiError ? err : new GoogleApiError(500, "INTERNAL", err instanceof Error ? err.message : "fake IAM failed");
      record.status = e.code;
      record.errorStatus = e.status;
      record.errorMessage = e.message;
      const error: Record<string, unknown> = { code: e.code, message: e.message, status: e.status };
      if (e.details.length) error["details"] = e.details;
      if (!res.headersSent) sendJson(res, e.code, { error });
    });
  });

  return {
    url,
    generateAccessTokenUrl: (email) => `${url}/v1/projects/-/serviceAccounts/${email}:generateAccessToken`,
    serviceAccounts: opts.serviceAccounts,
    requests,
    issuedTokens,
    async isValidAccessToken(token, email) {
      const found = issuedTokens.get(token);
      if (!found || found.revoked || found.expiresAt <= now()) return false;
      return email === undefined || found.email.toLowerCase() === email.toLowerCase();
    },
    revokeAccessToken(token) {
      const found = issuedTokens.get(token);
      if (found) found.revoked = true;
    },
    close: () => closeServer(server),
  };
}
