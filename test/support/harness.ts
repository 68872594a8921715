/**
 * Small helpers shared by the grant, cache, token-provider and hook tests: a closed loopback port, a fetch that
 * records what it sent, a logger that captures its lines, and secret-safe assertions. Nothing here prints a token:
 * tokens are compared through short fingerprints, and leak checks report labels, never values.
 */
import { createHash } from "node:crypto";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

import { expect } from "vitest";

import { substituteEnvReferences } from "../../src/config/env-references.js";
import { createLogger } from "../../src/log.js";
import type { Logger, LogLevel } from "../../src/log.js";

/** A loopback port that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RecordedCall {
  method: string;
  url: string;
}

/** A pass-through fetch that records method and URL of every call (never headers or bodies). */
export function recordingFetch(base: typeof globalThis.fetch = globalThis.fetch): {
  fetch: typeof globalThis.fetch;
  calls: RecordedCall[];
} {
  const calls: RecordedCall[] = [];
  const fetch = ((input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    calls.push({ method, url });
    return base(input, init);
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

export interface CapturedLog {
  logger: Logger;
  /** Parsed JSON lines, in order. */
  readonly lines: Array<Record<string, unknown>>;
  /** Every raw line joined: for leak checks. */
  text(): string;
}

/** A real pino logger (the plugin's own createLogger) writing into memory. */
export function captureLogger(level: LogLevel = "trace"): CapturedLog {
  return captureFrom(createLogger, level);
}

/** The same, with another package's createLogger (the packed one: under-test.ts). */
export function captureFrom(create: typeof createLogger, level: LogLevel = "trace"): CapturedLog {
  const raw: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = create({
    level,
    destination: {
      write(msg: string) {
        raw.push(msg);
        lines.push(JSON.parse(msg) as Record<string, unknown>);
      },
    },
  });
  return { logger, lines, text: () => raw.join("") };
}

/** A short, non-reversible fingerprint: safe to show in an assertion diff. */
export function fp(secret: string | undefined): string {
  if (secret === undefined) return "<undefined>";
  return `sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 12)}`;
}

export interface Secret {
  label: string;
  value: string;
}

/** Asserts that none of `secrets` occurs in any of `texts`; a failure names the secret's label only. */
export function expectNoLeak(texts: readonly string[], secrets: readonly Secret[]): void {
  const leaks: string[] = [];
  for (const [i, text] of texts.entries()) {
    for (const s of secrets) {
      if (s.value.length > 0 && text.includes(s.value)) leaks.push(`${s.label} in text #${i}`);
    }
  }
  expect(leaks).toEqual([]);
}

/** Settles `promise` and returns its rejection; fails if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected a rejection, but the promise resolved");
  expect(outcome.err).toBeInstanceOf(Error);
  return outcome.err as Error;
}

/**
 * `value` as opencode hands it to the plugin: written to a config file and read back, with `{env:VAR}` substituted
 * once in the file's text (src/config/env-references.ts, as opencode does).
 */
export function asOpencodeReadsIt<T>(value: T, env: NodeJS.ProcessEnv): T {
  return JSON.parse(substituteEnvReferences(JSON.stringify(value), env)) as T;
}
