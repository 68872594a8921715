/**
 * A mock OpenAI-compatible model server on 127.0.0.1 for tests.
 *
 * Serves `GET /v1/models` and `POST /v1/chat/completions` (streaming SSE and plain JSON).
 * Every request needs `Authorization: Bearer <token>` accepted by `validateToken`;
 * otherwise it answers 401 with OpenAI's error JSON. {@link ModelServer.failNext401}
 * forces 401s for otherwise-valid requests, to exercise refresh-on-401. Nothing here prints a token.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ModelServerOptions {
  /** Decides whether a bearer token is acceptable (e.g. `idp.isValidAccessToken`). */
  validateToken: (token: string) => Promise<boolean>;
  /** Model ids listed and accepted. Default `['mock-model']`. */
  models?: string[];
  /** The assistant's reply. Default `'Hello from the mock model'`. */
  reply?: string;
}

export interface ModelRequestRecord {
  method: string;
  path: string;
  /** The raw Authorization header. Sensitive: never print it. */
  authorization?: string;
  status: number;
  /** Parsed JSON body of POST requests. */
  body?: unknown;
}

export interface ModelServer {
  /** `http://127.0.0.1:PORT/v1` */
  readonly baseURL: string;
  /** Every request, in order, with the status it got. */
  readonly requests: ModelRequestRecord[];
  /** The next `n` requests that would succeed get 401 instead. */
  failNext401(n: number): void;
  close(): Promise<void>;
}

const UNAUTHORIZED = {
  error: { message: 'invalid or missing access token', type: 'invalid_request_error', code: 'invalid_api_key' },
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function openAiError(message: string, type: string, code: string | null): unknown {
  return { error: { message, type, param: null, code } };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Rough token count, good enough for a `usage` block. */
function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Starts a mock OpenAI-compatible server on 127.0.0.1 (random port). */
export async function startModelServer(opts: ModelServerOptions): Promise<ModelServer> {
  const models = opts.models ?? ['mock-model'];
  const reply = opts.reply ?? 'Hello from the mock model';
  const created = Math.floor(Date.now() / 1000);
  const requests: ModelRequestRecord[] = [];
  let forced401 = 0;

  const server = createServer();
  const { port } = await listen(server);
  const baseURL = `http://127.0.0.1:${port}/v1`;

  async function authorized(header: string | undefined): Promise<boolean> {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    const token = match?.[1];
    if (!token || !(await opts.validateToken(token))) return false;
    if (forced401 > 0) {
      forced401 -= 1;
      return false;
    }
    return true;
  }

  function promptTokens(body: Record<string, unknown>): number {
    const messages = Array.isArray(body['messages']) ? body['messages'] : [];
    return countTokens(JSON.stringify(messages));
  }

  function chatCompletion(res: ServerResponse, record: ModelRequestRecord, body: Record<string, unknown>, model: string): void {
    record.status = 200;
    const id = `chatcmpl-${randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    const usage = {
      prompt_tokens: promptTokens(body),
      completion_tokens: countTokens(reply),
      total_tokens: promptTokens(body) + countTokens(reply),
    };
    if (body['stream'] !== true) {
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created: now,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: reply }, logprobs: null, finish_reason: 'stop' }],
        usage,
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}): void => {
      const data = { id, object: 'chat.completion.chunk', created: now, model, choices: [{ index: 0, logprobs: null, ...choice }], ...extra };
      res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    chunk({ delta: { role: 'assistant', content: '' }, finish_reason: null });
    for (const piece of reply.match(/\S+\s*/g) ?? [reply]) {
      chunk({ delta: { content: piece }, finish_reason: null });
    }
    chunk({ delta: {}, finish_reason: 'stop' }, { usage });
    res.end('data: [DONE]\n\n');
  }

  async function route(req: IncomingMessage, res: ServerResponse, record: ModelRequestRecord): Promise<void> {
    // Statuses are recorded before any byte leaves, so a test reading `requests` after a response sees them.
    const send = (status: number, body: unknown): void => {
      record.status = status;
      sendJson(res, status, body);
    };
    const raw = req.method === 'POST' ? await readBody(req) : '';
    if (raw) {
      try {
        record.body = JSON.parse(raw) as unknown;
      } catch {
        record.body = raw;
      }
    }
    if (!(await authorized(req.headers.authorization))) {
      send(401, UNAUTHORIZED);
      return;
    }
    const path = record.path;
    if (req.method === 'GET' && path === '/v1/models') {
      send(200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created, owned_by: 'mock' })) });
      return;
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      if (!isRecord(record.body)) {
        send(400, openAiError('request body must be a JSON object', 'invalid_request_error', null));
        return;
      }
      const model = record.body['model'];
      if (typeof model !== 'string' || !models.includes(model)) {
        send(404, openAiError(`The model '${String(model)}' does not exist`, 'invalid_request_error', 'model_not_found'));
        return;
      }
      chatCompletion(res, record, record.body, model);
      return;
    }
    send(404, openAiError(`Unknown request URL: ${req.method ?? ''} ${path}`, 'invalid_request_error', 'unknown_url'));
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const record: ModelRequestRecord = {
      method: req.method ?? 'GET',
      path: new URL(req.url ?? '/', baseURL).pathname,
      status: 0,
    };
    if (req.headers.authorization !== undefined) record.authorization = req.headers.authorization;
    requests.push(record);
    route(req, res, record).catch(() => {
      if (res.headersSent) {
        res.end();
        return;
      }
      record.status = 500;
      sendJson(res, 500, openAiError('mock model server error', 'server_error', null));
    });
  });

  return {
    baseURL,
    requests,
    failNext401(n) {
      forced401 = n;
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
