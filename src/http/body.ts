/**
 * Bounded reading of HTTP bodies. Every body the plugin reads (CI token services, the IdP, the provider's 401,
 * `/models`) comes from a server that may be broken or hostile: reading it whole could hold megabytes in memory
 * and feed them to the scrubber. So a body is read up to a limit, and the rest is dropped (the stream is
 * cancelled, which closes the connection).
 */

/** More than any token response, error answer or discovery document: 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

/** A body that went past its limit; `limit` is in bytes. Carries no body text. */
export class BodyTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`the answer is larger than ${formatBytes(limit)}`);
    this.name = "BodyTooLargeError";
    this.limit = limit;
  }
}

export function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}

/** Whether `err` or one of its causes is a BodyTooLargeError (openid-client wraps it in its parse error). */
export function bodyTooLargeIn(err: unknown): BodyTooLargeError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof BodyTooLargeError) return e;
  }
  return undefined;
}

export interface LimitedBody {
  text: string;
  /** True when the body was longer than the limit and the rest was dropped. */
  truncated: boolean;
}

/**
 * The body as text, at most `limit` bytes of it. A longer body is cut (at a character boundary) and the rest is
 * dropped unread. Rejects as `response.text()` would on a network error or an aborted signal.
 */
export async function readBodyLimited(response: Response, limit: number = MAX_BODY_BYTES): Promise<LimitedBody> {
  if (!response.body) return { text: "", truncated: false };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: text + decoder.decode(), truncated: false };
    const room = limit - bytes;
    if (value.byteLength > room) {
      text += decoder.decode(value.subarray(0, room));
      await reader.cancel().catch(() => undefined);
      return { text, truncated: true };
    }
    bytes += value.byteLength;
    text += decoder.decode(value, { stream: true });
  }
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * The same response, with a body that errors with BodyTooLargeError past `limit` bytes (and cancels the rest).
 * For code that reads bodies itself (openid-client): it then fails on a clear error instead of buffering all of it.
 */
export function withBodyLimit(response: Response, limit: number = MAX_BODY_BYTES): Response {
  const source = response.body;
  // Statuses that may not carry a body cannot be rebuilt with one; they have none to limit anyway.
  if (!source || NULL_BODY_STATUSES.has(response.status)) return response;
  const reader = source.getReader();
  let bytes = 0;
  const limited = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      bytes += value.byteLength;
      if (bytes > limit) {
        await reader.cancel().catch(() => undefined);
        return controller.error(new BodyTooLargeError(limit));
      }
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  const copy = new Response(limited, { status: response.status, statusText: response.statusText, headers: response.headers });
  // A constructed Response has an empty url and redirected=false; keep the original's for callers that read them.
  Object.defineProperty(copy, "url", { value: response.url });
  Object.defineProperty(copy, "redirected", { value: response.redirected });
  return copy;
}

/** A fetch whose responses are limited as withBodyLimit says. */
export function limitedFetch(base: typeof globalThis.fetch, limit: number = MAX_BODY_BYTES): typeof globalThis.fetch {
  return (async (input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit) =>
    withBodyLimit(await base(input, init), limit)) as typeof globalThis.fetch;
}
