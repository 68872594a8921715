/**
 * A mock OpenAI-compatible model server on 127.0.0.1 for tests.
 *
 * Serves `GET /v1/models`, `POST /v1/chat/completions` and, text only, `POST /v1/responses` (streaming SSE and plain
 * JSON), under another path prefix when asked (Azure's, Vertex AI's).
 * Every request needs `Authorization: Bearer <token>` accepted by `validateToken`;
 * otherwise it answers 401 with OpenAI's error JSON. {@link ModelServer.failNext401}
 * forces 401s for otherwise-valid requests, to exercise refresh-on-401. {@link ModelServer.scriptToolCall} makes the
 * model ask for one tool call (streamed `tool_calls`, as OpenAI sends them) and records the tool's result that opencode
 * sends back. Nothing here prints a token.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ModelServerOptions {
  /** Decides whether a bearer token is acceptable (e.g. `idp.isValidAccessToken`). */
  validateToken: (token: string) => Promise<boolean>;
  /** Model ids listed and accepted. Default `['mock-model']`. */
  models?: string[];
  /** The assistant's reply. Default `'Hello from the mock model'`. */
  reply?: string;
  /**
   * The path the API lives under. Default `/v1`. Azure's v1 API is `/openai/v1`, Vertex AI's OpenAI-compatible one
   * `/v1/projects/<p>/locations/<l>/endpoints/openapi`; `{prefix}/models` and `{prefix}/chat/completions` are served.
   */
  pathPrefix?: string;
}

export interface ModelRequestRecord {
  method: string;
  path: string;
  /** The raw Authorization header. Sensitive: never print it. */
  authorization?: string;
  /** The names of every header received, lowercased (to check that no static key was sent). */
  headerNames: string[];
  status: number;
  /** Parsed JSON body of POST requests. */
  body?: unknown;
}

export interface ToolCallScriptOptions {
  /** The tool the model calls. Default `'bash'`. */
  tool?: string;
  /** The call's arguments, e.g. `{ command: 'env', description: 'Print the environment' }`. */
  args: Record<string, unknown>;
  /** Awaited just before the tool call is sent, with the request that gets it (already authenticated). */
  beforeCall?: (request: ModelRequestRecord) => void | Promise<void>;
  /** The plain-text answer to the request that carries the tool's result. Default: the server's `reply`. */
  reply?: string;
}

/** One scripted tool call: the first request that offers `tools` gets it; the request carrying its result gets text. */
export interface ToolCallScript {
  /** The call's `id` once sent. */
  readonly callId: string | undefined;
  /** The `role: "tool"` message answering the call, as received; undefined until it arrived. */
  readonly toolMessage: Record<string, unknown> | undefined;
  /** That message's content as text (text parts joined); undefined until it arrived. Sensitive: never print it. */
  readonly result: string | undefined;
}

export interface ModelServer {
  /** `http://127.0.0.1:PORT/v1` */
  readonly baseURL: string;
  /** Every request, in order, with the status it got. */
  readonly requests: ModelRequestRecord[];
  /** The next `n` requests that would succeed get 401 instead. */
  failNext401(n: number): void;
  /** Queues a scripted tool call (see {@link ToolCallScript}); scripts fire in order, each once. */
  scriptToolCall(options: ToolCallScriptOptions): ToolCallScript;
  /** Drops every queued or unfinished script, so one test's script cannot answer the next test's run. */
  clearScripts(): void;
  close(): Promise<void>;
}

interface ScriptState extends ToolCallScript {
  options: ToolCallScriptOptions;
  callId: string | undefined;
  toolMessage: Record<string, unknown> | undefined;
  result: string | undefined;
}

const UNAUTHORIZED = {
  error: { message: "invalid or missing access token", type: "invalid_request_error", code: "invalid_api_key" },
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function openAiError(message: string, type: string, code: string | null): unknown {
  return { error: { message, type, param: null, code } };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A chat message's content as text: a string as is, an array of parts as its text parts joined. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part: unknown) => (isRecord(part) && typeof part["text"] === "string" ? part["text"] : "")).join("");
}

function messagesOf(body: Record<string, unknown>): unknown[] {
  return Array.isArray(body["messages"]) ? body["messages"] : [];
}

function offersTools(body: Record<string, unknown>): boolean {
  return Array.isArray(body["tools"]) && body["tools"].length > 0;
}

/** Rough token count, good enough for a `usage` block. */
function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Starts a mock OpenAI-compatible server on 127.0.0.1 (random port). */
export async function startModelServer(opts: ModelServerOptions): Promise<ModelServer> {
  const models = opts.models ?? ["mock-model"];
  const reply = opts.reply ?? "Hello from the mock model";
  const created = Math.floor(Date.now() / 1000);
  const requests: ModelRequestRecord[] = [];
  let scripts: ScriptState[] = [];
  let forced401 = 0;

  const server = createServer();
  const { port } = await listen(server);
  const prefix = (opts.pathPrefix ?? "/v1").replace(/\/+$/, "");
  const baseURL = `http://127.0.0.1:${port}${prefix}`;

  async function authorized(header: string | undefined): Promise<boolean> {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
    const token = match?.[1];
    if (!token || !(await opts.validateToken(token))) return false;
    if (forced401 > 0) {
      forced401 -= 1;
      return false;
    }
    return true;
  }

  function promptTokens(body: Record<string, unknown>): number {
    const messages = Array.isArray(body["messages"]) ? body["messages"] : [];
    return countTokens(JSON.stringify(messages));
  }

  /** Answers with `text`, or with one call of `toolCall` when given; streamed (SSE) when the request asks for it. */
  /**
   * OpenAI's Responses API, text only (opencode's azure provider uses it by default): a JSON answer, or the stream of
   * events the AI SDK reads (created, output item added, text delta, output item done, completed).
   */
  function responsesAnswer(
    res: ServerResponse,
    record: ModelRequestRecord,
    body: Record<string, unknown>,
    model: string,
    text: string,
  ): void {
    record.status = 200;
    const id = `resp_${randomUUID().replace(/-/g, "")}`;
    const itemId = `msg_${randomUUID().replace(/-/g, "")}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const inputTokens = countTokens(JSON.stringify(body["input"] ?? ""));
    const usage = {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: countTokens(text),
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + countTokens(text),
    };
    const message = {
      type: "message",
      id: itemId,
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text, annotations: [] }],
    };
    const response = {
      id,
      object: "response",
      created_at: createdAt,
      model,
      status: "completed",
      incomplete_details: null,
      output: [message],
      usage,
    };
    if (body["stream"] !== true) {
      sendJson(res, 200, response);
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const event = (data: Record<string, unknown>) => res.write(`event: ${String(data["type"])}\ndata: ${JSON.stringify(data)}\n\n`);
    event({ type: "response.created", response: { ...response, status: "in_progress", output: [], usage: null } });
    event({ type: "response.output_item.added", output_index: 0, item: { ...message, status: "in_progress", content: [] } });
    event({ type: "response.output_text.delta", item_id: itemId, output_index: 0, content_index: 0, delta: text, logprobs: [] });
    event({ type: "response.output_item.done", output_index: 0, item: message });
    event({ type: "response.completed", response });
    res.end();
  }

  function chatCompletion(
    res: ServerResponse,
    record: ModelRequestRecord,
    body: Record<string, unknown>,
    model: string,
    text: string,
    toolCall?: { id: string; name: string; arguments: string },
  ): void {
    record.status = 200;
    const id = `chatcmpl-${randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    const completion = toolCall ? toolCall.arguments : text;
    const usage = {
      prompt_tokens: promptTokens(body),
      completion_tokens: countTokens(completion),
      total_tokens: promptTokens(body) + countTokens(completion),
    };
    const finishReason = toolCall ? "tool_calls" : "stop";
    const call = toolCall && { id: toolCall.id, type: "function", function: { name: toolCall.name, arguments: toolCall.arguments } };
    if (body["stream"] !== true) {
      const message = call ? { role: "assistant", content: null, tool_calls: [call] } : { role: "assistant", content: text };
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created: now,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
        usage,
      });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}): void => {
      const data = {
        id,
        object: "chat.completion.chunk",
        created: now,
        model,
        choices: [{ index: 0, logprobs: null, ...choice }],
        ...extra,
      };
      res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    if (call) {
      // One delta carrying the whole call, as OpenAI does for short arguments.
      chunk({ delta: { role: "assistant", content: null, tool_calls: [{ index: 0, ...call }] }, finish_reason: null });
    } else {
      chunk({ delta: { role: "assistant", content: "" }, finish_reason: null });
      for (const piece of text.match(/\S+\s*/g) ?? [text]) {
        chunk({ delta: { content: piece }, finish_reason: null });
      }
    }
    chunk({ delta: {}, finish_reason: finishReason }, { usage });
    res.end("data: [DONE]\n\n");
  }

  /** The script whose call this request answers (a `role: "tool"` message with its id), with that message. */
  function answeredScript(body: Record<string, unknown>): { script: ScriptState; message: Record<string, unknown> } | undefined {
    for (const script of scripts) {
      if (script.callId === undefined || script.result !== undefined) continue;
      const message = messagesOf(body).find((m) => isRecord(m) && m["role"] === "tool" && m["tool_call_id"] === script.callId);
      if (isRecord(message)) return { script, message };
    }
    return undefined;
  }

  /** Scripted answers first: the result of a scripted call gets text, the first request offering tools gets the next call. */
  async function scriptedCompletion(
    res: ServerResponse,
    record: ModelRequestRecord,
    body: Record<string, unknown>,
    model: string,
  ): Promise<boolean> {
    const answered = answeredScript(body);
    if (answered) {
      answered.script.toolMessage = answered.message;
      answered.script.result = contentText(answered.message["content"]);
      chatCompletion(res, record, body, model, answered.script.options.reply ?? reply);
      return true;
    }
    const next = scripts.find((s) => s.callId === undefined);
    if (!next || !offersTools(body)) return false;
    next.callId = `call_${randomUUID().replace(/-/g, "")}`;
    await next.options.beforeCall?.(record);
    const name = next.options.tool ?? "bash";
    chatCompletion(res, record, body, model, "", { id: next.callId, name, arguments: JSON.stringify(next.options.args) });
    return true;
  }

  async function route(req: IncomingMessage, res: ServerResponse, record: ModelRequestRecord): Promise<void> {
    // Statuses are recorded before any byte leaves, so a test reading `requests` after a response sees them.
    const send = (status: number, body: unknown): void => {
      record.status = status;
      sendJson(res, status, body);
    };
    const raw = req.method === "POST" ? await readBody(req) : "";
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
    if (req.method === "GET" && path === `${prefix}/models`) {
      send(200, { object: "list", data: models.map((id) => ({ id, object: "model", created, owned_by: "mock" })) });
      return;
    }
    if (req.method === "POST" && path === `${prefix}/chat/completions`) {
      if (!isRecord(record.body)) {
        send(400, openAiError("request body must be a JSON object", "invalid_request_error", null));
        return;
      }
      const model = record.body["model"];
      if (typeof model !== "string" || !models.includes(model)) {
        send(404, openAiError(`The model '${String(model)}' does not exist`, "invalid_request_error", "model_not_found"));
        return;
      }
      if (await scriptedCompletion(res, record, record.body, model)) return;
      chatCompletion(res, record, record.body, model, reply);
      return;
    }
    if (req.method === "POST" && path === `${prefix}/responses` && isRecord(record.body)) {
      const model = record.body["model"];
      if (typeof model !== "string" || !models.includes(model)) {
        send(404, openAiError(`The model '${String(model)}' does not exist`, "invalid_request_error", "model_not_found"));
        return;
      }
      responsesAnswer(res, record, record.body, model, reply);
      return;
    }
    send(404, openAiError(`Unknown request URL: ${req.method ?? ""} ${path}`, "invalid_request_error", "unknown_url"));
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const record: ModelRequestRecord = {
      method: req.method ?? "GET",
      path: new URL(req.url ?? "/", baseURL).pathname,
      headerNames: Object.keys(req.headers),
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
      sendJson(res, 500, openAiError("mock model server error", "server_error", null));
    });
  });

  return {
    baseURL,
    requests,
    failNext401(n) {
      forced401 = n;
    },
    scriptToolCall(options) {
      const script: ScriptState = { options, callId: undefined, toolMessage: undefined, result: undefined };
      scripts.push(script);
      return script;
    },
    clearScripts() {
      scripts = [];
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
