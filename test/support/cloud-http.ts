/**
 * Small HTTP helpers shared by the loopback cloud fakes (fake-entra, fake-google-sts, fake-iam-credentials):
 * listening on 127.0.0.1, reading bodies, strict form parsing and JSON answers. Nothing here logs a body.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Bodies larger than this are refused: the fakes only ever see small token requests. */
const MAX_BODY_BYTES = 64 * 1024;

export function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error("request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** The media type of a request without parameters, lower-cased (`application/x-www-form-urlencoded`). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

export interface ParsedForm {
  /** First value of every parameter. Sensitive values stay here, in memory only. */
  params: Record<string, string>;
  /** Parameter names in the order they were sent, repeats included. */
  names: string[];
  /** Names sent more than once (RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once"). */
  repeated: string[];
}

export function parseForm(body: string): ParsedForm {
  const params: Record<string, string> = {};
  const names: string[] = [];
  const repeated = new Set<string>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (name in params) repeated.add(name);
    else params[name] = value;
    names.push(name);
  }
  return { params, names, repeated: [...repeated] };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An opaque random token with a recognisable prefix (`ya29.d.`), like Google's. */
export function opaqueToken(prefix: string, bytes = 96): string {
  return `${prefix}${randomBytes(bytes).toString("base64url")}`;
}

/** The bearer value of an `Authorization` header, or undefined. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  return match?.[1];
}
