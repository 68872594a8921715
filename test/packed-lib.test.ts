/**
 * `opencode-ci-auth/lib` as `npm pack` ships it (test/support/packed-package.ts), against the loopback world: the
 * bundle alone, with no node_modules of its own, runs the file cache (two processes of one job, one grant) and a
 * subprocess source (`exec`) through a real grant. The src/ tests cover the behaviour; these prove the bundle keeps it.
 */
import { readdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { rmSync, writeFileSync } from "node:fs";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as Lib from "../src/lib.js";
import { fp } from "./support/harness.js";
import { packedPackage } from "./support/packed-package.js";
import { startWorld, type World } from "./support/world.js";

let world: World;
let dir: string;
let lib: typeof Lib;
const { packageDir } = packedPackage();

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(join(tmpdir(), "packed-lib-"));
  lib = (await import(pathToFileURL(join(packageDir, "dist", "lib.js")).href)) as typeof Lib;
});
afterAll(async () => {
  await world?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A logger of the packed library whose JSON lines are kept. */
function captured() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = lib.createLogger({
    level: "debug",
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

function parsed(block: Record<string, unknown>) {
  const result = lib.parseOAuth2Block("miaou", { issuer: world.idp.issuer, clientId: "opencode-ci", scopes: ["openid"], ...block }, {});
  if (!result.ok) throw result.error;
  return result.config;
}

describe("the packed package", () => {
  it("installs with no dependencies of its own", async () => {
    const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.dependencies).toBeUndefined();
    expect(await readdir(packageDir)).not.toContain("node_modules");
    expect(await readdir(join(packageDir, "dist"))).toContain("THIRD_PARTY_LICENSES");
  });

  it("its declarations type-check a library consumer (strict, library files checked) without our dependencies", async () => {
    // The consumer project beside the install: node_modules holds opencode-ci-auth alone (no zod, no jose, no peer).
    const consumer = join(packageDir, "..", "..");
    const source = join(consumer, "types-probe.ts");
    const program = (good: string) => {
      writeFileSync(source, good);
      const options = {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        typeRoots: [join(import.meta.dirname, "..", "node_modules", "@types")],
        types: ["node"],
      };
      return ts.getPreEmitDiagnostics(ts.createProgram([source], options)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, " "));
    };
    const probe =
      'import { createTokenProvider, parseOAuth2Block, type OAuth2Input, type OAuth2Config } from "opencode-ci-auth/lib";\n' +
      'const input: OAuth2Input = { issuer: "https://idp.example", clientId: "ci", subjectTokenSource: { type: "gitlab" } };\n' +
      'const parsed = parseOAuth2Block("p", input);\n' +
      'export const flow: OAuth2Config["authFlow"] | undefined = parsed.ok ? parsed.config.authFlow : undefined;\n' +
      "export const create = createTokenProvider;\n";
    try {
      expect(program(probe)).toEqual([]);
      // The check can fail: a source type the schema does not know is refused by the published types.
      expect(program(probe.replace('type: "gitlab"', 'type: "gitlab_ci"')).join("\n")).toMatch(/gitlab_ci/);
    } finally {
      rmSync(source, { force: true });
    }
  }, 60_000);
});

describe("the packed /lib", () => {
  it('"cache": "file": a second process of the same job reuses the first one\'s token, one grant for both', async () => {
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: world.ci.requestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: world.ci.requestToken,
      GITHUB_SERVER_URL: "https://github.com",
      GITHUB_REPOSITORY_ID: "123",
      GITHUB_RUN_ID: "9001",
      GITHUB_RUN_ATTEMPT: "1",
      GITHUB_JOB: "ai",
    };
    const config = parsed({ cache: "file", subjectTokenSource: { type: "github_actions", audience: world.idp.issuer } });
    const cacheDir = join(dir, "cache");
    const before = world.idp.grants.length;
    const first = await lib.createTokenProvider("miaou", config, { env, cacheDir, logger: captured().logger }).getToken();
    const second = captured();
    const reused = await lib.createTokenProvider("miaou", config, { env, cacheDir, logger: second.logger }).getToken();
    expect(fp(reused.value)).toBe(fp(first.value));
    expect(world.idp.grants.length - before).toBe(1);
    expect(second.lines.some((l) => l["event"] === "token_from_file_cache")).toBe(true);
    expect(await readdir(cacheDir)).toHaveLength(1);
  });

  it("an exec source: the command's token goes through the grant; a failing command is a clear error", async () => {
    const tokenFile = join(dir, "subject-token");
    await writeFile(tokenFile, await world.ci.mint({ aud: world.idp.issuer }));
    const before = world.idp.grants.length;
    const ok = parsed({ subjectTokenSource: { type: "exec", command: ["cat", tokenFile], audience: world.idp.issuer } });
    const token = await lib
      .createTokenProvider("miaou", ok, { env: { PATH: process.env.PATH, OPENCODE_CI_AUTH_ALLOW_EXEC: "cat" }, logger: captured().logger })
      .getToken();
    expect(token.tokenType).toBe("Bearer");
    expect(world.idp.grants.length - before).toBe(1);

    const failing = parsed({ subjectTokenSource: { type: "exec", command: ["cat", join(dir, "missing")], audience: world.idp.issuer } });
    const error = await lib
      .createTokenProvider("miaou", failing, {
        env: { PATH: process.env.PATH, OPENCODE_CI_AUTH_ALLOW_EXEC: "cat" },
        logger: captured().logger,
      })
      .getToken()
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(lib.isCiAuthError(error)).toBe(true);
    expect(error).toBeInstanceOf(lib.SubjectTokenRequestError);
    expect((error as Error).name).toBe("SubjectTokenRequestError");
    expect((error as Error).message).toContain("exec");
  });
});
