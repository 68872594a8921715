/**
 * A fault-injecting HTTP reverse proxy on 127.0.0.1 for reliability tests.
 *
 * Placed in front of an upstream base URL (the IdP, the CI issuer, the model server), it forwards
 * method, path+query, headers (Host unchanged) and body, and returns the upstream answer unchanged —
 * unless a one-shot fault was queued with {@link FaultProxy.inject} or an outage rule matches
 * ({@link FaultProxy.outage}). Faults cover the ways a token endpoint fails in real life: error statuses,
 * connection resets, header timeouts, stalled bodies, redirects and corrupted answers.
 *
 * {@link startProxiedIdp} starts an oidc-provider IdP whose issuer IS the proxy URL, so discovery and
 * the token endpoint both go through the proxy (openid-client requires the discovered `issuer` to equal
 * the configured one exactly). Nothing here logs headers or bodies, so no token is ever printed.
 */
import { Agent, createServer, request as httpRequest } from "node:http";
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

import { startIdp } from "./idp.js";
import type { Idp, IdpOptions } from "./idp.js";

/** An upstream answer as seen (and returned) by a `rewrite` fault. Header names are lower case. */
export interface UpstreamAnswer {
  status: number;
  /** Lower-case names; repeated headers are joined with `, `. */
  headers: Record<string, string>;
  /** The body decoded as UTF-8 (the proxy asks the upstream for `accept-encoding: identity`). */
  body: string;
}

/** What a `rewrite` fault returns; `status` and `headers` default to the upstream's. */
export interface RewrittenAnswer {
  status?: number;
  /** When given, REPLACES the upstream headers (spread `upstream.headers` to keep them). `content-length` is always recomputed. */
  headers?: Record<string, string>;
  body: string;
}

/**
 * One injected failure.
 *
 * - `status`: answer `status` without contacting the upstream. An object `body` is sent as JSON
 *   (`content-type: application/json`), a string as `text/plain; charset=utf-8`; `headers` override both
 *   (e.g. `{ 'content-type': 'text/html' }` for an HTML error page, `{ 'retry-after': '1' }` for a 429).
 * - `reset`: read the request, then destroy the socket with a TCP RST and no response (a network error).
 * - `hang`: read the request and send nothing. Without `ms` the request hangs until the client gives up or
 *   the proxy closes; with `ms` it is forwarded normally after `ms` (a slow upstream).
 * - `slow-body`: send status and headers at once, then stall `ms` before sending the body. With a `body`
 *   the answer is synthetic (`status` default 200, same body rules as `status`); without one it is the
 *   upstream's answer (its status unless `status` overrides it), whose body is held back for `ms`.
 * - `redirect`: answer `status` (default 302) with `Location: location` and an empty body. The target is
 *   only requested if the client follows; a relative `location` resolves against the proxy.
 * - `rewrite`: forward, buffer the upstream answer, and send what `transform` returns instead.
 */
export type Fault =
  | { kind: "status"; status: number; body?: string | object; headers?: Record<string, string> }
  | { kind: "reset" }
  | { kind: "hang"; ms?: number }
  | { kind: "slow-body"; ms: number; status?: number; body?: string | object }
  | { kind: "redirect"; location: string; status?: 301 | 302 | 307 | 308 }
  | { kind: "rewrite"; transform: (upstream: UpstreamAnswer) => RewrittenAnswer };

/** Which requests a fault applies to: a prefix of, or a RegExp tested against, the request's path+query. */
export type FaultMatch = string | RegExp;

/** One request the proxy received. */
export interface ProxiedRequest {
  method: string;
  /** Path and query as sent by the client, e.g. `/token` or `/_apis/token?api-version=2.0&audience=…`. */
  path: string;
  /** The fault applied to this request; absent when it was passed through. */
  fault?: Fault["kind"];
  /** `Date.now()` when the request's headers arrived. */
  at: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`, with the same path layout as the upstream. */
  readonly url: string;
  /** Queue faults for the next requests whose path matches (string prefix or RegExp); each fault is used once, in order. */
  inject(match: FaultMatch, ...faults: Fault[]): void;
  /** While set, every matching request gets this fault (an outage); clear with `outage(match, undefined)`. Queued faults go first. */
  outage(match: FaultMatch, fault: Fault | undefined): void;
  /** Every request received, in order (method, path+query, applied fault kind; never headers or bodies). */
  readonly requests: ProxiedRequest[];
  /** Drops all queued faults and outages (the request log is kept). */
  clearFaults(): void;
  /** Stops listening and destroys every open socket (hanging ones included) and upstream request. */
  close(): Promise<void>;
}

/** Headers that belong to one connection and must not be forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Throws when the proxy is used before its lazily resolved upstream is known. */
class UpstreamUnset extends Error {}

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function matchKey(match: FaultMatch): string {
  return typeof match === "string" ? `prefix:${match}` : `regexp:/${match.source}/${match.flags}`;
}

function matches(match: FaultMatch, path: string): boolean {
  if (typeof match === "string") return path.startsWith(match);
  match.lastIndex = 0; // a /g or /y RegExp is stateful
  return match.test(path);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Body and default content-type of a synthetic answer. */
function encodeBody(body: string | object | undefined): { data: Buffer; contentType?: string } {
  if (body === undefined) return { data: Buffer.alloc(0) };
  if (typeof body === "string") return { data: Buffer.from(body, "utf8"), contentType: "text/plain; charset=utf-8" };
  return { data: Buffer.from(JSON.stringify(body), "utf8"), contentType: "application/json" };
}

/** Upstream response headers minus hop-by-hop ones, as a flat lower-case record. */
function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function withLength(headers: Record<string, string>, length: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === "content-length" || HOP_BY_HOP.has(lower)) continue;
    out[name] = value;
  }
  out["content-length"] = String(length);
  return out;
}

/**
 * Starts a fault proxy on 127.0.0.1 (random port) in front of `upstream` (a base URL, optionally with a path
 * prefix). `upstream` may be a function, resolved per request: this lets the proxy bind (and its URL be known)
 * before the upstream exists. Requests that arrive while it throws get a 502.
 */
export async function startFaultProxy(upstream: string | (() => string)): Promise<FaultProxy> {
  const resolveUpstream = typeof upstream === "string" ? () => upstream : upstream;
  const queue: Array<{ match: FaultMatch; fault: Fault }> = [];
  const outages = new Map<string, { match: FaultMatch; fault: Fault }>();
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const upstreamRequests = new Set<ClientRequest>();
  const agent = new Agent({ keepAlive: false });
  let closed = false;

  const server = createServer();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const { port } = await listen(server);
  const url = `http://127.0.0.1:${port}`;

  /** Runs `fn` after `ms` unless the proxy closes or the client goes away first. */
  function later(res: ServerResponse, ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.off("close", cancel);
      if (!closed && !res.destroyed) fn();
    }, ms);
    const cancel = (): void => {
      clearTimeout(timer);
      timers.delete(timer);
    };
    timers.add(timer);
    res.once("close", cancel);
  }

  function pickFault(path: string): Fault | undefined {
    const index = queue.findIndex((entry) => matches(entry.match, path));
    if (index >= 0) return queue.splice(index, 1)[0]?.fault;
    for (const { match, fault } of outages.values()) if (matches(match, path)) return fault;
    return undefined;
  }

  /** Sends the request to the upstream; resolves with its response (headers received, body unread). */
  function forward(req: IncomingMessage, body: Buffer, identity: boolean): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let base: URL;
      try {
        base = new URL(resolveUpstream());
      } catch (err) {
        reject(new UpstreamUnset(err instanceof Error ? err.message : "upstream is not set"));
        return;
      }
      const incoming = new URL(req.url ?? "/", "http://proxy.invalid");
      const target = new URL(base.href);
      target.pathname = base.pathname.replace(/\/+$/, "") + incoming.pathname;
      target.search = incoming.search;

      const headers: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      }
      if (body.length > 0 || req.headers["content-length"] !== undefined) headers["content-length"] = String(body.length);
      if (identity) headers["accept-encoding"] = "identity";

      const upstreamReq = httpRequest(target, { method: req.method, headers, agent });
      upstreamRequests.add(upstreamReq);
      upstreamReq.once("close", () => upstreamRequests.delete(upstreamReq));
      upstreamReq.once("response", resolve);
      upstreamReq.once("error", reject);
      upstreamReq.end(body);
    });
  }

  function sendSynthetic(
    res: ServerResponse,
    status: number,
    body: string | object | undefined,
    headers: Record<string, string> = {},
  ): void {
    const { data, contentType } = encodeBody(body);
    const base: Record<string, string> = contentType ? { "content-type": contentType } : {};
    res.writeHead(status, withLength({ ...base, ...headers }, data.length));
    res.end(data);
  }

  function badGateway(res: ServerResponse, err: unknown): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    sendSynthetic(res, 502, { error: "bad_gateway", message: `fault proxy: upstream failed: ${message}` });
  }

  async function passThrough(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const answer = await forward(req, body, false);
    res.writeHead(answer.statusCode ?? 502, flatHeaders(answer.headers));
    // An upstream that dies mid-body leaves the client with a truncated answer, as a real proxy would.
    answer.once("aborted", () => res.destroy());
    answer.once("error", () => res.destroy());
    answer.pipe(res);
  }

  async function apply(fault: Fault, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    switch (fault.kind) {
      case "status":
        sendSynthetic(res, fault.status, fault.body, fault.headers);
        return;
      case "reset":
        req.socket.resetAndDestroy();
        return;
      case "hang":
        if (fault.ms !== undefined) {
          later(res, fault.ms, () => {
            passThrough(req, res, body).catch((err: unknown) => badGateway(res, err));
          });
        }
        return;
      case "redirect":
        res.writeHead(fault.status ?? 302, { location: fault.location, "content-length": "0" });
        res.end();
        return;
      case "slow-body": {
        let status: number;
        let headers: Record<string, string>;
        let data: Buffer;
        if (fault.body !== undefined) {
          const encoded = encodeBody(fault.body);
          status = fault.status ?? 200;
          headers = withLength(encoded.contentType ? { "content-type": encoded.contentType } : {}, encoded.data.length);
          data = encoded.data;
        } else {
          const answer = await forward(req, body, false);
          data = await readBody(answer);
          status = fault.status ?? answer.statusCode ?? 502;
          headers = withLength(flatHeaders(answer.headers), data.length);
        }
        res.writeHead(status, headers);
        res.flushHeaders();
        later(res, fault.ms, () => res.end(data));
        return;
      }
      case "rewrite": {
        const answer = await forward(req, body, true);
        const upstreamBody = (await readBody(answer)).toString("utf8");
        const upstreamAnswer: UpstreamAnswer = {
          status: answer.statusCode ?? 502,
          headers: flatHeaders(answer.headers),
          body: upstreamBody,
        };
        const out = fault.transform(upstreamAnswer);
        const data = Buffer.from(out.body, "utf8");
        res.writeHead(out.status ?? upstreamAnswer.status, withLength(out.headers ?? upstreamAnswer.headers, data.length));
        res.end(data);
        return;
      }
    }
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? "/";
    const fault = pickFault(path);
    const record: ProxiedRequest = { method: req.method ?? "GET", path, at: Date.now() };
    if (fault) record.fault = fault.kind;
    requests.push(record);

    readBody(req)
      .then((body) => (fault ? apply(fault, req, res, body) : passThrough(req, res, body)))
      .catch((err: unknown) => badGateway(res, err));
  });

  return {
    url,
    requests,
    inject(match, ...faults) {
      for (const fault of faults) queue.push({ match, fault });
    },
    outage(match, fault) {
      const key = matchKey(match);
      if (fault) outages.set(key, { match, fault });
      else outages.delete(key);
    },
    clearFaults() {
      queue.length = 0;
      outages.clear();
    },
    close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const upstreamReq of upstreamRequests) upstreamReq.destroy();
      return new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        agent.destroy();
      });
    },
  };
}

/** An IdP reached through a fault proxy. */
export interface ProxiedIdp {
  /** `idp.issuer` and `idp.tokenEndpoint` are the proxy's; `idp.serverUrl` is the IdP's own address. */
  idp: Idp;
  proxy: FaultProxy;
  /** Closes the proxy, then the IdP. */
  close(): Promise<void>;
}

/**
 * Starts an oidc-provider IdP (startIdp) whose ISSUER URL is the proxy's URL, so discovery and the token
 * endpoint both go through the proxy. `expectedAudience` defaults to the issuer, i.e. the proxy URL.
 * The proxy binds first with a lazily resolved upstream, then the IdP starts on its own port.
 */
export async function startProxiedIdp(opts: IdpOptions): Promise<ProxiedIdp> {
  let upstream: string | undefined;
  const proxy = await startFaultProxy(() => {
    if (upstream === undefined) throw new UpstreamUnset("the IdP has not started yet");
    return upstream;
  });
  try {
    const idp = await startIdp({ ...opts, issuer: proxy.url });
    upstream = idp.serverUrl;
    return {
      idp,
      proxy,
      async close() {
        await proxy.close();
        await idp.close();
      },
    };
  } catch (err) {
    await proxy.close();
    throw err;
  }
}
