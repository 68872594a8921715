/**
 * A fake CI OIDC token issuer on 127.0.0.1 for tests.
 *
 * It serves OIDC discovery and a JWKS, emulates GitHub Actions' token service
 * (`GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
 * `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, JWT in `value`),
 * and mints GitHub-style, GitLab-style or plain tokens on demand with {@link CiIssuer.mint}.
 * Nothing here prints a token.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { CryptoKey, JWK, JWTPayload } from "jose";

/** Which default claim set a minted token starts from. */
export type CiTokenStyle = "github" | "gitlab" | "plain";

/**
 * GitHub's two default forms of `sub` for the default claims (acme/app, owner id 200001, repository id 100001, on main):
 * the name form, and the immutable form that repositories created or renamed after GitHub's cut-over (and those that
 * opted in) get. A repository's tokens carry one of them; the plugin must behave the same with either.
 */
export const GITHUB_SUBJECTS = {
  name: "repo:acme/app:ref:refs/heads/main",
  immutable: "repo:acme@200001/app@100001:ref:refs/heads/main",
} as const;
export type GithubSubjectForm = keyof typeof GITHUB_SUBJECTS;

export interface CiIssuerOptions {
  /** The form of `sub` in GitHub-style tokens. Default `'name'`. */
  githubSubject?: GithubSubjectForm;
  /** Claims merged over the style defaults of every token (minted or fetched). A claim set to `undefined` is removed. */
  defaultClaims?: Record<string, unknown>;
  /** Token lifetime in seconds when neither `expiresIn` nor `exp` is given. Default 300 (GitHub's 5 min). */
  lifetimeSeconds?: number;
}

export interface MintOptions {
  /** `aud` claim. Default `https://github.com/<repository_owner>` (i.e. `https://github.com/acme`). */
  aud?: string | string[];
  /** Claims merged over the defaults; a claim set to `undefined` is removed. */
  claims?: Record<string, unknown>;
  /** Lifetime in seconds from `iat`. */
  expiresIn?: number;
  /** Explicit `iat` (epoch seconds); `nbf` follows it. */
  iat?: number;
  /** Explicit `exp` (epoch seconds); wins over `expiresIn`. */
  exp?: number;
  /** Default claim set. Default `'github'`. */
  style?: CiTokenStyle;
  /** Sign with a key that is NOT in the issuer's JWKS (same `kid`), to provoke signature failures. */
  untrusted?: boolean;
}

export interface CiRequestRecord {
  path: string;
  query: Record<string, string>;
  /** The raw Authorization header. Sensitive: never print it. */
  authorization?: string;
}

export interface CiIssuer {
  /** Base URL, e.g. `http://127.0.0.1:41234`; the `iss` of every token. */
  readonly issuer: string;
  /** `${issuer}/.well-known/jwks` */
  readonly jwksUrl: string;
  /** GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`: `${issuer}/_apis/token?api-version=2.0` (already has a query). */
  readonly requestUrl: string;
  /** GitHub's `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (random per issuer). */
  readonly requestToken: string;
  /** The `kid` in every token header and in the JWKS. */
  readonly kid: string;
  /** Persistent claim overrides applied by the GitHub-style endpoint (on top of `defaultClaims`). */
  claims: Record<string, unknown>;
  /** One-shot claim overrides for the NEXT token handed out by the GitHub-style endpoint. */
  overrideNextClaims(claims: Record<string, unknown>): void;
  /** Makes the next `n` GitHub-style token requests fail with `status` (default 503) before any other check. */
  failNextRequests(n: number, status?: number): void;
  /** Signs a token with `iss` = {@link CiIssuer.issuer} (unless `claims.iss` overrides it). */
  mint(opts?: MintOptions): Promise<string>;
  /** Every request the server received, in order. */
  readonly requests: CiRequestRecord[];
  /** Every JWT handed out by the GitHub-style endpoint or {@link CiIssuer.mint}. */
  readonly tokensIssued: string[];
  close(): Promise<void>;
}

const ALG = "ES256";

/** GitHub Actions-like claims for `acme/app` on `main` (without iss/aud/iat/nbf/exp/jti). */
function githubDefaults(subject: GithubSubjectForm): Record<string, unknown> {
  return {
    sub: GITHUB_SUBJECTS[subject],
    repository: "acme/app",
    repository_id: "100001",
    repository_owner: "acme",
    repository_owner_id: "200001",
    repository_visibility: "private",
    actor: "octocat",
    ref: "refs/heads/main",
    ref_type: "branch",
    sha: "0123456789abcdef0123456789abcdef01234567",
    event_name: "push",
    workflow: "ci",
    workflow_ref: "acme/app/.github/workflows/ci.yml@refs/heads/main",
    job_workflow_ref: "acme/app/.github/workflows/ci.yml@refs/heads/main",
    run_id: "300001",
    run_attempt: "1",
    runner_environment: "github-hosted",
  };
}

/** GitLab CI-like `id_tokens` claims for project `acme/app` on `main`. */
function gitlabDefaults(): Record<string, unknown> {
  return {
    sub: "project_path:acme/app:ref_type:branch:ref:main",
    project_id: "100001",
    project_path: "acme/app",
    namespace_id: "200001",
    namespace_path: "acme",
    user_login: "octocat",
    pipeline_id: "300001",
    pipeline_source: "push",
    job_id: "400001",
    ref: "main",
    ref_type: "branch",
    ref_protected: "true",
    runner_environment: "gitlab-hosted",
  };
}

function styleDefaults(style: CiTokenStyle, subject: GithubSubjectForm): Record<string, unknown> {
  if (style === "github") return githubDefaults(subject);
  if (style === "gitlab") return gitlabDefaults();
  return { sub: "system:serviceaccount:ci:runner" };
}

/** Merges layers left to right; an own key whose value is `undefined` deletes the claim. */
function mergeClaims(...layers: Array<Record<string, unknown> | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) delete out[key];
      else out[key] = value;
    }
  }
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Starts a fake CI token issuer on 127.0.0.1 (random port). */
export async function startCiIssuer(opts: CiIssuerOptions = {}): Promise<CiIssuer> {
  const lifetime = opts.lifetimeSeconds ?? 300;
  const kid = `ci-${randomBytes(4).toString("hex")}`;
  const [trusted, foreign] = await Promise.all([generateKeyPair(ALG), generateKeyPair(ALG)]);
  const publicJwk: JWK = { ...(await exportJWK(trusted.publicKey)), kid, alg: ALG, use: "sig" };
  const requestToken = randomBytes(24).toString("base64url");

  const requests: CiRequestRecord[] = [];
  const tokensIssued: string[] = [];
  let nextClaims: Record<string, unknown> | undefined;
  let failures: { remaining: number; status: number } = { remaining: 0, status: 503 };

  const server = createServer();
  const { port } = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  async function sign(options: MintOptions, endpointLayers: Array<Record<string, unknown> | undefined>): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const iat = options.iat ?? now;
    const exp = options.exp ?? iat + (options.expiresIn ?? lifetime);
    const base = mergeClaims(styleDefaults(options.style ?? "github", opts.githubSubject ?? "name"), opts.defaultClaims, ...endpointLayers);
    const owner = typeof base["repository_owner"] === "string" ? base["repository_owner"] : "acme";
    const payload = mergeClaims(
      {
        iss: issuer,
        jti: randomUUID(),
        aud: options.aud ?? `https://github.com/${owner}`,
        iat,
        nbf: iat,
        exp,
      },
      base,
      options.claims,
    );
    const key: CryptoKey = options.untrusted ? foreign.privateKey : trusted.privateKey;
    const jwt = await new SignJWT(payload as JWTPayload).setProtectedHeader({ alg: ALG, kid, typ: "JWT" }).sign(key);
    tokensIssued.push(jwt);
    return jwt;
  }

  const ci: CiIssuer = {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks`,
    requestUrl: `${issuer}/_apis/token?api-version=2.0`,
    requestToken,
    kid,
    claims: {},
    overrideNextClaims(claims) {
      nextClaims = { ...claims };
    },
    failNextRequests(n, status = 503) {
      failures = { remaining: n, status };
    },
    mint(options = {}) {
      return sign(options, []);
    },
    requests,
    tokensIssued,
    close() {
      return new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };

  async function handleTokenRequest(url: URL, authorization: string | undefined, res: ServerResponse): Promise<void> {
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      sendJson(res, failures.status, { message: "simulated token service failure" });
      return;
    }
    if (url.searchParams.get("api-version") !== "2.0") {
      sendJson(res, 400, { message: "api-version query parameter 2.0 is required" });
      return;
    }
    if (authorization !== `Bearer ${requestToken}`) {
      sendJson(res, 401, { message: "Bad credentials: invalid or missing request token" });
      return;
    }
    const oneShot = nextClaims;
    nextClaims = undefined;
    const audience = url.searchParams.get("audience");
    const options: MintOptions = audience ? { aud: audience } : {};
    const value = await sign(options, [ci.claims, oneShot]);
    sendJson(res, 200, { count: value.length, value });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", issuer);
    const record: CiRequestRecord = { path: url.pathname, query: Object.fromEntries(url.searchParams) };
    if (req.headers.authorization !== undefined) record.authorization = req.headers.authorization;
    requests.push(record);

    if (req.method !== "GET") {
      sendJson(res, 405, { message: "method not allowed" });
      return;
    }
    switch (url.pathname) {
      case "/.well-known/openid-configuration":
        sendJson(res, 200, {
          issuer,
          jwks_uri: ci.jwksUrl,
          subject_types_supported: ["public", "pairwise"],
          response_types_supported: ["id_token"],
          id_token_signing_alg_values_supported: [ALG],
          claims_supported: ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "repository", "repository_owner", "ref", "ref_type"],
          scopes_supported: ["openid"],
        });
        return;
      case "/.well-known/jwks":
        sendJson(res, 200, { keys: [publicJwk] });
        return;
      case "/_apis/token":
        handleTokenRequest(url, req.headers.authorization, res).catch((err: unknown) => {
          sendJson(res, 500, { message: err instanceof Error ? err.message : "internal error" });
        });
        return;
      default:
        sendJson(res, 404, { message: "not found" });
    }
  }

  server.on("request", handle);
  return ci;
}
