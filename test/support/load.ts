/**
 * Small helpers for the bounded load test (test/stress.test.ts): wall-clock scheduling, a probe that watches every
 * token-endpoint request per provider (to check single flight), and a GC handle to measure retained heap.
 * Nothing here reads or keeps a header or a token: the probe only reads the `audience` form field.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Sleeps until the wall clock reads `at` (ms since the epoch); returns at once if that is past. */
export async function sleepUntil(at: number): Promise<void> {
  for (let left = at - Date.now(); left > 0; left = at - Date.now()) await sleep(left);
}

/** The start of the wall-clock second holding `t`: oidc-provider's `iat`/`exp` are whole seconds. */
export const floorSecond = (t: number): number => Math.floor(t / 1000) * 1000;

/** One token-endpoint request seen by {@link tokenEndpointProbe}. */
export interface TokenCall {
  /** The form's `audience` (the test gives each provider its own), or `?` when absent. */
  key: string;
  /** `Date.now()` when the request was handed to fetch (the IdP cannot have issued anything before). */
  start: number;
  /** When its response headers (or an error) came back. */
  end?: number;
  /** HTTP status; undefined while in flight or on a network error. */
  status?: number;
}

export interface TokenEndpointProbe {
  /** Give this to the plugin as its IdP/CI fetch. */
  fetch: typeof globalThis.fetch;
  /** Every request to `tokenUrl`, in order. */
  readonly calls: TokenCall[];
  /** The most requests of one key that were in flight at the same time, over the probe's life. */
  maxInFlight(key: string): number;
}

/**
 * A pass-through fetch that watches POSTs to `tokenUrl`: per audience, the requests in flight at once and the
 * highest such count. Every other request (discovery, the CI token service) passes untouched and unrecorded.
 */
export function tokenEndpointProbe(tokenUrl: string, base: typeof globalThis.fetch = globalThis.fetch): TokenEndpointProbe {
  const calls: TokenCall[] = [];
  const inFlight = new Map<string, number>();
  const highest = new Map<string, number>();
  const fetch = (async (input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url !== tokenUrl) return base(input, init);
    const body = init?.body;
    const form = body instanceof URLSearchParams ? body : typeof body === "string" ? new URLSearchParams(body) : undefined;
    const key = form?.get("audience") ?? "?";
    const call: TokenCall = { key, start: Date.now() };
    calls.push(call);
    const now = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, now);
    highest.set(key, Math.max(highest.get(key) ?? 0, now));
    try {
      const response = await base(input, init);
      call.status = response.status;
      return response;
    } finally {
      call.end = Date.now();
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    }
  }) as typeof globalThis.fetch;
  return { fetch, calls, maxInFlight: (key) => highest.get(key) ?? 0 };
}

let gcFn: (() => void) | undefined;

/** A full-GC function without `--expose-gc` on the command line (vitest's workers do not get it). */
export function exposeGc(): () => void {
  if (!gcFn) {
    setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  return gcFn;
}

/**
 * Bytes of live objects after full collections (a turn of the event loop between them, so pending finalizers run):
 * the V8 heap without its code spaces, whose size moves as the JIT compiles and drops code, not with retained data.
 */
export async function heapAfterGc(): Promise<number> {
  const gc = exposeGc();
  for (let i = 0; i < 4; i++) {
    gc();
    await sleep(10);
  }
  gc();
  return getHeapSpaceStatistics()
    .filter((space) => !space.space_name.startsWith("code_"))
    .reduce((sum, space) => sum + space.space_used_size, 0);
}
