/**
 * The package under test, twice: `src/lib.ts` as the sources are, and `opencode-ci-auth/lib` as `npm pack` ships it
 * (the bundle, installed by the global setup: test/support/packed-package.ts). Integration tests that reach the
 * token flow through the public library run once against each with `describe.each(UNDER_TEST)`, so the bundle is held
 * to the same behaviour as the sources: file cache, subprocess sources, retries, refusals, logs.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type * as Lib from "../../src/lib.js";
import type { OAuth2Config, OAuth2Input } from "../../src/lib.js";
import { captureFrom, type CapturedLog } from "./harness.js";
import { packedPackage } from "./packed-package.js";

export type LibModule = typeof Lib;

export interface UnderTest {
  /** "src" or "packed": the name describe.each shows. */
  name: string;
  lib: LibModule;
}

const packed = (await import(pathToFileURL(join(packedPackage().packageDir, "dist", "lib.js")).href)) as LibModule;

export const UNDER_TEST: readonly UnderTest[] = [
  { name: "src", lib: (await import("../../src/lib.js")) as LibModule },
  { name: "packed", lib: packed },
];

/** A validated block, through the library's own parser; throws its ConfigError when the block is invalid. */
export function parseWith(lib: LibModule, input: Partial<OAuth2Input> & Record<string, unknown>): OAuth2Config {
  const result = lib.parseOAuth2Block("miaou", input, {});
  if (!result.ok) throw result.error;
  return result.config;
}

/** A logger of `lib` whose JSON lines are kept, as captureLogger (harness.ts) does for src/. */
export function captureWith(lib: LibModule, level: Lib.LogLevel = "trace"): CapturedLog {
  return captureFrom(lib.createLogger, level);
}
