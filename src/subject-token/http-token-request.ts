/**
 * One HTTP request to a service that hands out subject tokens (Azure Pipelines, the Google Cloud metadata server,
 * a generic URL), under the rules every such request follows: the transport rule was checked by the caller; one
 * time limit covers headers and body (context.timeoutMs); redirects are never followed, so credentials in the
 * headers only reach the configured URL; network failures, timeouts, 408, 429 and 5xx are transient. Messages name
 * the service and the URL's origin only (a query may hold secrets) and quote at most 200 scrubbed characters of a
 * failed answer's body; a successful body is never quoted. At most MAX_BODY_BYTES of a body is read: a token
 * service that answers more is not answering a token.
 */
import { SubjectTokenRequestError } from "../errors.js";
import { describeCause } from "../describe-failure.js";
import { isTransientStatus, parseRetryAfter } from "../http/status.js";
import { MAX_BODY_BYTES, formatBytes, readBodyLimited } from "../http/body.js";
import { quote } from "../scrub.js";
import type { SubjectTokenContext } from "./source.js";

export interface HttpTokenRequest {
  source: string;
  /** How the service is named in messages, e.g. "the Azure Pipelines OIDC service". */
  service: string;
  url: URL;
  method?: "GET" | "POST";
  headers: Record<string, string>;
  /** Why redirects are not followed, for the message, e.g. "SYSTEM_ACCESSTOKEN is only sent to SYSTEM_OIDCREQUESTURI". */
  redirectReason: string;
  /** A fix to add to the message of a refusal (a 4xx other than 408 and 429), by status; `default` for the others. */
  refusalHints?: Partial<Record<number | "default", string>>;
  /** Failures before an answer that are not worth retrying, with their message (e.g. ENOTFOUND for a host that only exists on one platform). */
  permanentNetworkErrors?: Partial<Record<string, string>>;
}

export interface HttpTokenAnswer {
  status: number;
  headers: Headers;
  body: string;
}

const causeCode = (err: unknown): string | undefined => {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
};

/** The answer of a 2xx; a SubjectTokenRequestError for anything else. */
export async function requestTokenOverHttp(context: SubjectTokenContext, request: HttpTokenRequest): Promise<HttpTokenAnswer> {
  const { providerId } = context;
  const { source, service, url } = request;
  const { timeoutMs } = context;
  const timeout = AbortSignal.timeout(timeoutMs);
  let response: Response;
  let body: string;
  let truncated: boolean;
  try {
    response = await context.fetch(url, { method: request.method ?? "GET", headers: request.headers, redirect: "manual", signal: timeout });
    // The body counts against the same limit: a service that stalls mid-body is as dead as a silent one.
    ({ text: body, truncated } = await readBodyLimited(response, MAX_BODY_BYTES));
  } catch (err) {
    if (timeout.aborted) {
      throw new SubjectTokenRequestError(source, `${service} at ${url.origin} did not answer within ${timeoutMs / 1000}s.`, {
        providerId,
        cause: err,
        transient: true,
        summary: `no answer within ${timeoutMs / 1000}s`,
      });
    }
    const code = causeCode(err);
    const permanent = code === undefined ? undefined : request.permanentNetworkErrors?.[code];
    if (permanent) throw new SubjectTokenRequestError(source, permanent, { providerId, cause: err });
    throw new SubjectTokenRequestError(source, `could not reach ${service} at ${url.origin} (${describeCause(err)}).`, {
      providerId,
      cause: err,
      transient: true,
      summary: `could not connect (${describeCause(err)})`,
    });
  }
  const status = response.status;
  if (status >= 300 && status < 400) {
    throw new SubjectTokenRequestError(
      source,
      `${service} at ${url.origin} answered a redirect (HTTP ${status}), which is not followed: ${request.redirectReason}.`,
      {
        providerId,
        status,
        summary: `HTTP ${status}`,
      },
    );
  }
  if (!response.ok) {
    const transient = isTransientStatus(status);
    const said = body.trim() ? `: ${quote(body, 200)}` : "";
    const hint = transient ? undefined : (request.refusalHints?.[status] ?? request.refusalHints?.default);
    throw new SubjectTokenRequestError(source, `${service} at ${url.origin} answered HTTP ${status}${said}${hint ? `. ${hint}` : ""}`, {
      providerId,
      status,
      transient,
      retryAfterMs: transient ? parseRetryAfter(response.headers.get("retry-after")) : undefined,
      summary: `HTTP ${status}`,
    });
  }
  if (truncated) {
    throw new SubjectTokenRequestError(
      source,
      `${service} at ${url.origin} answered more than ${formatBytes(MAX_BODY_BYTES)}, which is not a token; the rest was not read.`,
      {
        providerId,
        status,
        summary: `answer over ${formatBytes(MAX_BODY_BYTES)}`,
      },
    );
  }
  return { status, headers: response.headers, body };
}
