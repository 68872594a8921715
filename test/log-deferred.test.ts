/**
 * createLogger defers pino: level checks are answered without it, and it is loaded by the first line that must be
 * written. Its own file, so that no other test has loaded pino in this module graph first.
 */
import { describe, expect, it } from "vitest";

import { createLogger, pinoIsLoaded, type LogLevel } from "../src/log.js";

function capture(level: LogLevel) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level, destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { logger, lines };
}

describe("createLogger: pino is loaded by the first enabled line", () => {
  it("answers level checks and swallows disabled lines without loading pino", () => {
    const { logger, lines } = capture("warn");
    expect(logger.level).toBe("warn");
    expect(["trace", "debug", "info", "warn", "error", "fatal"].map((l) => logger.isLevelEnabled(l))).toEqual([
      false,
      false,
      false,
      true,
      true,
      true,
    ]);
    expect(logger.isLevelEnabled("silent")).toBe(false);
    expect(logger.isLevelEnabled("verbose")).toBe(false);
    const child = logger.child({ provider: "acme" });
    logger.info({ event: "x" }, "not written");
    child.debug("not written either");
    expect(child.isLevelEnabled("info")).toBe(false);
    expect(lines).toEqual([]);
    expect(pinoIsLoaded()).toBe(false);
  });

  it("silent writes nothing at any level", () => {
    const { logger, lines } = capture("silent");
    logger.fatal("no");
    logger.child({ provider: "acme" }).error("no");
    expect(lines).toEqual([]);
    expect(logger.isLevelEnabled("fatal")).toBe(false);
    expect(pinoIsLoaded()).toBe(false);
  });

  it("the first enabled line loads pino and is written at once, with the child's bindings and redaction", () => {
    const { logger, lines } = capture("info");
    const child = logger.child({ provider: "acme" });
    child.info({ event: "token_issued", accessToken: "secret-value" }, "issued");
    expect(pinoIsLoaded()).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, provider: "acme", event: "token_issued", accessToken: "[redacted]", msg: "issued" });
    // The parent and a grandchild write through the same pino, each with its own bindings.
    logger.warn("parent");
    child.child({ step: "grant" }).error("grandchild");
    expect(lines.map((l) => [l.msg, l.provider, l.step])).toEqual([
      ["issued", "acme", undefined],
      ["parent", undefined, undefined],
      ["grandchild", "acme", "grant"],
    ]);
  });
});
