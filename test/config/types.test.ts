/**
 * The published declaration of the configuration types (dist/config/types.d.ts, written by scripts/expand-types.mjs
 * during `npm run build`, which `npm test` runs first) must import nothing and equal the zod schemas' types. The
 * equality is checked by the TypeScript compiler on a probe file; a declaration with one field changed must fail it.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, expectTypeOf, it } from "vitest";
import { parseOAuth2Block } from "../../src/config/parse.js";
import type { OAuth2Config } from "../../src/config/types.js";
// @ts-expect-error: a plain .mjs build script without declarations
import { expandedTypeAliases } from "../../scripts/expand-types.mjs";

const ROOT = resolve(import.meta.dirname, "..", "..");
const PUBLISHED = join(ROOT, "dist", "config", "types.d.ts");
const NAMES = ["SubjectTokenSourceConfig", "OAuth2Input", "OAuth2Config", "AuthFlow"];

/** Type errors of a probe that asserts, alias by alias, that `declaration` and src/config/types.ts name the same types. */
async function mismatches(declaration: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "types-probe-"));
  try {
    await writeFile(join(dir, "package.json"), '{ "type": "module" }\n');
    await writeFile(join(dir, "published.d.ts"), declaration);
    const probe = join(dir, "probe.ts");
    const src = JSON.stringify(join(ROOT, "src", "config", "types.js"));
    await writeFile(
      probe,
      `import type * as P from "./published.js";\nimport type * as S from ${src};\n` +
        "type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;\n" +
        NAMES.map((n) => `export const ${n}: Same<P.${n}, S.${n}> = true;`).join("\n"),
    );
    const config = ts.getParsedCommandLineOfConfigFile(
      join(ROOT, "tsconfig.json"),
      {},
      { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
    );
    const program = ts.createProgram([probe], { ...config?.options, noEmit: true });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, " "));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the published configuration types", () => {
  it("import nothing and equal the zod schemas' types", async () => {
    const published = await readFile(PUBLISHED, "utf8");
    expect(published).not.toMatch(/\bimport\b|\bfrom\s+["']/);
    for (const name of NAMES) expect(published).toContain(`export type ${name} =`);
    expect(await mismatches(published)).toEqual([]);
  }, 60_000);

  it("a declaration with one field changed fails the check", async () => {
    const published = await readFile(PUBLISHED, "utf8");
    const changed = published.replace(/timeoutSeconds: number;/, "timeoutSeconds: string;");
    expect(changed).not.toBe(published);
    const errors = await mismatches(changed);
    // Exactly the aliases that hold the changed field differ; everything else still type-checks.
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => /Type 'true' is not assignable to type 'false'/.test(e))).toBe(true);
  }, 60_000);

  it("the build refuses a types file that holds more than type aliases", async () => {
    const dir = await mkdtemp(join(tmpdir(), "types-source-"));
    try {
      const file = join(dir, "types.ts");
      await writeFile(file, "export const notAType = 1;\n");
      await writeFile(join(dir, "package.json"), '{ "type": "module" }\n');
      // tsconfig.json, not the build's: the build's rootDir is src/, and this file is outside it.
      expect(() => expandedTypeAliases(file, join(ROOT, "tsconfig.json"))).toThrow(/only imports and exported type aliases/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("type what the parser returns", () => {
    const parsed = parseOAuth2Block("miaou", {
      issuer: "https://idp.example",
      clientId: "ci",
      subjectTokenSource: { type: "github_actions" },
    });
    if (!parsed.ok) throw parsed.error;
    expectTypeOf(parsed.config).toEqualTypeOf<OAuth2Config>();
    expect(parsed.config.subjectTokenSource.type).toBe("github_actions");
    expect(parsed.config.authFlow).toBe("jwt_bearer");
  });
});
