/**
 * The `fetch` installed in a managed provider's options: every request the provider's SDK sends (answers,
 * titles, subagents, model listing) goes through it and carries the current access token.
 * A 401 from the provider forces one refresh and one retry of that request.
 */
import { ProviderUnauthorizedError } from "../errors.js";
import { readBodyLimited } from "../http/body.js";
import type { Logger } from "../log.js";
import { quote } from "../scrub.js";
import type { ManagedProvider } from "./registry.js";
import { toOpencodeError } from "./opencode-error.js";

type FetchInput = Parameters<typeof globalThis.fetch>[0];

/**
 * Static-key headers the AI SDKs send from `apiKey` (`@ai-sdk/azure` always sends `api-key`): on a managed provider
 * that key is the plugin's placeholder, or a key nobody should need. Azure refuses a wrong key, and what it does
 * when a key and a Bearer token arrive together is not documented; so the access token is the only credential a
 * managed provider's requests carry.
 */
const API_KEY_HEADERS = ["api-key", "x-api-key"];

function withAuthorization(input: FetchInput, init: RequestInit | undefined, token: string): RequestInit {
  const headers = new Headers(input instanceof Request ? input.headers : undefined);
  new Headers(init?.headers).forEach((value, key) => headers.set(key, value));
  for (const name of API_KEY_HEADERS) headers.delete(name);
  headers.set("authorization", `Bearer ${token}`);
  return { ...init, headers };
}

function requestUrl(input: FetchInput): string {
  return input instanceof Request ? input.url : String(input);
}

/** A body we can send twice: absent, or not a one-shot stream. */
function replayable(input: FetchInput, init: RequestInit | undefined): boolean {
  if (input instanceof Request) return true; // cloned below
  return !(init?.body instanceof ReadableStream);
}

export function createProviderFetch(
  managed: ManagedProvider,
  logger: Logger,
  baseFetch: typeof globalThis.fetch = globalThis.fetch,
): typeof globalThis.fetch {
  const { providerId } = managed;
  const log = logger.child({ provider: providerId });
  const authorizedFetch = async (input: FetchInput, init?: RequestInit): Promise<Response> => {
    if (managed.error) throw toOpencodeError(managed.error, providerId);
    const tokens = managed.tokenProvider;
    let token: string;
    try {
      token = (tokens.peek() ?? (await tokens.getToken())).value;
    } catch (err) {
      throw toOpencodeError(err, providerId);
    }
    const canRetry = replayable(input, init);
    const retryInput = input instanceof Request ? input.clone() : input;
    const response = await baseFetch(input, withAuthorization(input, init, token));
    if (response.status !== 401) return response;
    // Even when this request cannot be replayed, the next one must not reuse the rejected token.
    tokens.invalidate(token);
    if (!canRetry) return response;

    log.warn({ event: "provider_unauthorized", status: 401 }, "the provider answered 401; refreshing the access token and retrying once");
    let fresh: string;
    try {
      fresh = (await tokens.getToken()).value;
    } catch (err) {
      throw toOpencodeError(err, providerId);
    }
    await response.body?.cancel();
    const retried = await baseFetch(retryInput, withAuthorization(retryInput, init, fresh));
    if (retried.status !== 401) return retried;
    tokens.invalidate(fresh);
    // Twice refused, once with a brand-new token: not a stale token but a trust problem. Say so, instead of
    // handing opencode a bare 401. The provider's words are kept (scrubbed, shortened): they often name the cause.
    // At most MAX_BODY_BYTES of them are read.
    const said = quote((await readBodyLimited(retried).catch(() => ({ text: "" }))).text, 300);
    const error = new ProviderUnauthorizedError(new URL(retried.url || requestUrl(input)).origin, retried.status, said, { providerId });
    log.error({ event: "provider_unauthorized_after_refresh", status: retried.status }, error.reason);
    throw toOpencodeError(error, providerId);
  };
  return authorizedFetch as typeof globalThis.fetch;
}
