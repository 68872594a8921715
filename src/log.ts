/**
 * Structured logs through pino, to stderr only: stdout belongs to `opencode run`.
 *
 * Redaction happens here, once. Known secret fields are censored by path, and every string value
 * is passed through `scrub`, which hides anything shaped like a token. So a careless field cannot leak
 * a token, even at trace level.
 */
import { createRequire } from "node:module";
import type pinoModule from "pino";
import { CENSOR, scrub } from "./scrub.js";

export { scrub };

/** One level's method, as pino takes it: fields first (optional), then a message with printf-style arguments. */
export interface LogFn {
  (fields: object, message?: string, ...args: unknown[]): void;
  (message: string, ...args: unknown[]): void;
}

/**
 * The logger this package hands out: pino's, described here rather than imported from pino, which the bundle hides
 * (the published declarations may not import it).
 */
export interface Logger {
  level: string;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  isLevelEnabled(level: string): boolean;
  child(bindings: Record<string, unknown>): Logger;
}

/** Where log lines go: each call gets one line of text. */
export interface LogDestination {
  write(line: string): unknown;
}
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export const LOG_LEVEL_ENV = "OPENCODE_CI_AUTH_LOG_LEVEL";
/** `pretty` (default): one readable line per event, for CI logs. `json`: pino's JSON lines, for machines. */
export const LOG_FORMAT_ENV = "OPENCODE_CI_AUTH_LOG_FORMAT";
const LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
/** pino's numbers for the levels: a level is enabled when its number is at least the logger's. */
const LEVEL_VALUES: Readonly<Record<LogLevel, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};
const METHODS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;

type Pino = typeof pinoModule;
let pinoLoaded: Pino | undefined;

/**
 * pino, loaded on first use rather than at import. At the default level a run that goes well logs nothing, and
 * loading pino was a fifth of the plugin's import time (docs/performance.md, figure 3). In dist/, the build points
 * this `require("pino")` at dist/vendor/pino.cjs, pino bundled apart, and the bundle's banner gives ESM a real
 * `require`. From src/ (vitest, tsx), where ESM has none, Node's own loads pino from node_modules.
 */
function loadPino(): Pino {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- synchronous on purpose: a log line cannot wait
  pinoLoaded ??= (typeof require === "function" ? require("pino") : createRequire(import.meta.url)("pino")) as Pino;
  return pinoLoaded;
}

/** Whether pino's modules have been evaluated in this process (for the test that keeps it deferred). */
export function pinoIsLoaded(): boolean {
  return pinoLoaded !== undefined;
}

/** Field names that always hold secrets, wherever they appear in a log object. */
const SECRET_KEYS = [
  "accessToken",
  "access_token",
  "subjectToken",
  "subject_token",
  "assertion",
  "clientSecret",
  "client_secret",
  "client_assertion",
  "requestToken",
  "authorization",
  "Authorization",
  "privateKey",
  "refresh_token",
  "id_token",
  "token",
  "value",
];

const REDACT_PATHS = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)];

const MAX_DEPTH = 6;

function scrubValues(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrub(value);
  if (value === null || typeof value !== "object") return value;
  // Deeper than we look is dropped, not passed through unscrubbed (this also ends cycles).
  if (depth > MAX_DEPTH) return CENSOR;
  // Own-property copying would drop message and stack (not enumerable). Copy them scrubbed onto an object with the
  // same prototype, so pino's err serializer, which runs after this, still reports the right type.
  if (value instanceof Error) {
    const copy = Object.create(Object.getPrototypeOf(value) as object) as Record<string, unknown>;
    for (const [k, v] of Object.entries(loadPino().stdSerializers.err(value))) {
      if (k !== "type") copy[k] = scrubValues(v, depth + 1);
    }
    return copy;
  }
  if (Array.isArray(value)) return value.map((v) => scrubValues(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubValues(v, depth + 1);
  return out;
}

const asLevel = (value: unknown): LogLevel | undefined => {
  const candidate = typeof value === "string" ? value.trim().toLowerCase() : "";
  return (LEVELS as readonly string[]).includes(candidate) ? (candidate as LogLevel) : undefined;
};

/** The env var wins, then the plugin option, then `warn`; an unknown value is skipped, not fatal. */
export function resolveLogLevel(requested: unknown, env: NodeJS.ProcessEnv = process.env): LogLevel {
  return asLevel(env[LOG_LEVEL_ENV]) ?? asLevel(requested) ?? "warn";
}

export type LogFormat = "pretty" | "json";

const asFormat = (value: unknown): LogFormat | undefined => {
  const candidate = typeof value === "string" ? value.trim().toLowerCase() : "";
  return candidate === "json" || candidate === "pretty" ? candidate : undefined;
};

/** Resolved like the level: the env var, then the plugin option, then `pretty`; an unknown value is skipped. */
export function resolveLogFormat(requested: unknown, env: NodeJS.ProcessEnv = process.env): LogFormat {
  return asFormat(env[LOG_FORMAT_ENV]) ?? asFormat(requested) ?? "pretty";
}

const LEVEL_LABELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
/** Fields the pretty line shows in its prefix, or not at all; every other field follows the message as JSON. */
const PREFIX_FIELDS = new Set(["level", "time", "pid", "hostname", "name", "provider", "msg"]);
const twoDigits = (n: number) => String(n).padStart(2, "0");

/**
 * One of pino's JSON lines as the `pretty` line: `[HH:MM:SS] LEVEL: opencode-ci-auth [<provider>]: <msg> {fields}`,
 * local time. Our own few lines instead of pino-pretty, which cost a dependency tree and import time. It only
 * reshapes what pino wrote, after redaction and scrubbing, so it cannot un-hide a secret.
 */
export function formatPrettyLine(line: string): string {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith("\n") ? line : `${line}\n`;
  }
  const at = new Date(typeof event.time === "number" ? event.time : Date.now());
  const time = `${twoDigits(at.getHours())}:${twoDigits(at.getMinutes())}:${twoDigits(at.getSeconds())}`;
  const level = LEVEL_LABELS[Number(event.level)] ?? String(event.level);
  const provider = event.provider === undefined ? "" : ` [${String(event.provider)}]`;
  const rest = Object.entries(event).filter(([key]) => !PREFIX_FIELDS.has(key));
  const fields = rest.length > 0 ? ` ${JSON.stringify(Object.fromEntries(rest))}` : "";
  return `[${time}] ${level}: opencode-ci-auth${provider}: ${typeof event.msg === "string" ? event.msg : ""}${fields}\n`;
}

/** stderr, synchronously (a CI job may exit right after an error), as readable lines or JSON. */
function stderrDestination(format: LogFormat): LogDestination {
  const stderr = loadPino().destination({ fd: 2, sync: true });
  if (format === "json") return stderr;
  return { write: (line: string) => void stderr.write(formatPrettyLine(line)) };
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr unless a test captures them. */
  destination?: LogDestination;
}

/**
 * A logger that answers level checks itself and builds pino on the first line it must write; its children share
 * that pino. Lines are written synchronously as before: nothing is queued, so nothing is lost at exit.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? resolveLogLevel(undefined);
  let root: Logger | undefined;
  const build = (): Logger =>
    (root ??= loadPino()(
      {
        name: "opencode-ci-auth",
        level,
        base: { name: "opencode-ci-auth" },
        redact: { paths: REDACT_PATHS, censor: CENSOR },
        formatters: { log: (obj) => scrubValues(obj) as Record<string, unknown> },
        hooks: {
          // The message string is ours, but it may interpolate a server's words: scrub it too.
          logMethod(args, method) {
            method.apply(this, args.map((a) => (typeof a === "string" ? scrub(a) : a)) as Parameters<typeof method>);
          },
        },
      },
      options.destination ?? stderrDestination(options.format ?? resolveLogFormat(undefined)),
    ));
  return deferred(level, build);
}

function deferred(level: LogLevel, build: () => Logger): Logger {
  const threshold = LEVEL_VALUES[level];
  const isLevelEnabled = (name: string) => threshold <= (LEVEL_VALUES[name as LogLevel] ?? -Infinity) && name !== "silent";
  const logger = {
    level,
    isLevelEnabled,
    child: (bindings: Record<string, unknown>): Logger => {
      let child: Logger | undefined;
      return deferred(level, () => (child ??= build().child(bindings)));
    },
  } as Logger;
  for (const method of METHODS) {
    const enabled = isLevelEnabled(method);
    logger[method] = ((...args: Parameters<LogFn>) => {
      if (enabled) (build()[method] as (...a: unknown[]) => void)(...args);
    }) as LogFn;
  }
  return logger;
}
