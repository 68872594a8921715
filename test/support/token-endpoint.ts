/**
 * A scripted HTTP endpoint on 127.0.0.1 for the subject-token sources that call a service (Azure Pipelines, the
 * Google Cloud metadata server, a generic URL). It records every request (headers included: compare secrets
 * in them through fingerprints only) and answers with whatever the current handler returns.
 */
import { createServer } from "node:http";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface EndpointRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

export interface EndpointAnswer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Send the headers and part of the body, then stall. */
  stallAfterHeaders?: boolean;
}

export interface TokenEndpoint {
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  readonly requests: EndpointRequest[];
  answer(handler: (req: EndpointRequest) => EndpointAnswer | Promise<EndpointAnswer>): void;
  close(): Promise<void>;
}

export async function startTokenEndpoint(): Promise<TokenEndpoint> {
  const requests: EndpointRequest[] = [];
  let handler: (req: EndpointRequest) => EndpointAnswer | Promise<EndpointAnswer> = () => ({ status: 404, body: "no handler" });
  const server = createServer((req, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const record: EndpointRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
    };
    requests.push(record);
    req.resume();
    req.on("end", () => {
      Promise.resolve(handler(record)).then(
        (a) => {
          res.writeHead(a.status ?? 200, { "content-type": "text/plain", ...a.headers });
          if (a.stallAfterHeaders) {
            res.write((a.body ?? "").slice(0, 5));
            return;
          }
          res.end(a.body ?? "");
        },
        () => {
          res.writeHead(500);
          res.end("handler failed");
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    answer(h) {
      handler = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
