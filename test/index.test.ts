/**
 * opencode calls every export of the plugin entry and refuses the whole plugin if one is not a function,
 * so the built entry must export the plugin function and nothing else.
 */
import { describe, expect, it } from "vitest";

// The built files, as opencode loads them (`npm test` builds first). Held in variables so typechecking a
// clean clone does not need dist/.
const ENTRY = "../dist/index.js";
const LIB = "../dist/lib.js";

describe("the package entry (dist/index.js, what opencode imports)", () => {
  it("exports only the plugin function", async () => {
    const entry = (await import(ENTRY)) as Record<string, unknown>;
    const exports = Object.values(entry);
    expect(exports.length).toBeGreaterThan(0);
    for (const value of exports) expect(typeof value).toBe("function");
    // opencode de-duplicates exports by identity: all names must be the same function, or it would init twice.
    expect(new Set(exports).size).toBe(1);
  });

  it("returns the config and chat.headers hooks", async () => {
    const { default: plugin } = (await import(ENTRY)) as {
      default: (input: unknown, options?: unknown) => Promise<Record<string, unknown>>;
    };
    const hooks = await plugin({}, { logLevel: "silent" });
    expect(typeof hooks.config).toBe("function");
    expect(typeof hooks["chat.headers"]).toBe("function");
  });

  it("keeps library pieces behind the ./lib subpath", async () => {
    const lib = (await import(LIB)) as Record<string, unknown>;
    expect(typeof lib.createTokenProvider).toBe("function");
    expect(typeof lib.parseOAuth2Block).toBe("function");
  });
});
