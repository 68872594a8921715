#!/usr/bin/env node
// `npm run build`: dist/ as it is published. esbuild bundles the three entry points (the plugin, `/lib`, the CLI)
// with every runtime dependency, so the package has no `dependencies` and opencode's install of it fetches one
// tarball. pino is bundled apart, as dist/vendor/pino.cjs, which the logger require()s on the first line it writes:
// a run at the default level logs nothing and so never reads it (docs/performance.md, figure 3). tsc writes the declarations; only those the two typed entries reach are kept, and they may import
// nothing but each other, Node's types and the optional peer @opencode-ai/plugin, since the consumer no longer
// installs our dependencies. Finally dist/THIRD_PARTY_LICENSES lists every package whose code is in the bundle.
//   node scripts/build.mjs
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { writeExpandedTypeAliases } from "./expand-types.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "dist");
/** Where the build leaves esbuild's metafile, for the licence test; not published. */
export const METAFILE = join(ROOT, "node_modules", ".cache", "opencode-ci-auth", "esbuild-meta.json");
export const LICENSES_FILE = "THIRD_PARTY_LICENSES";
export const ENTRY_POINTS = { index: "src/index.ts", lib: "src/lib.ts", "cli/main": "src/cli/main.ts" };
/** pino's own bundle, relative to dist/, and how the other outputs require() it. */
export const PINO_VENDOR = "vendor/pino.cjs";
const PINO_REQUIRE = `require("./${PINO_VENDOR}")`;
/** What a published declaration may import besides its sibling files. */
const ALLOWED_DECLARATION_IMPORTS = /^(node:.*|@opencode-ai\/plugin)$/;

/** `node_modules/<name>` or `node_modules/@scope/<name>` of a metafile input, the innermost one; undefined for our sources. */
export function packageDirOf(input) {
  const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  return match?.[1];
}

const LICENCE_FILE = /^(licen[cs]e|copying)(\..*)?$/i;

/** The bundled packages (one entry per package folder), with name, version, licence and the licence's full text. */
export function bundledPackages(metafile, root = ROOT) {
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageDirOf(input);
    if (dir) dirs.add(dir);
  }
  return [...dirs]
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
      const licenceFile = readdirSync(join(root, dir))
        .filter((f) => LICENCE_FILE.test(f))
        .sort()[0];
      if (!licenceFile)
        throw new Error(`${manifest.name}@${manifest.version} (${dir}) is bundled but ships no licence file: add its text by hand`);
      return {
        dir,
        name: manifest.name,
        version: manifest.version,
        license: typeof manifest.license === "string" ? manifest.license : JSON.stringify(manifest.license ?? "UNKNOWN"),
        text: readFileSync(join(root, dir, licenceFile), "utf8").trim(),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

export function renderLicenses(packages) {
  const head =
    "opencode-ci-auth bundles code from the packages below into dist/. Each is listed with its version, its licence\n" +
    "and the full text of that licence, as shipped by the package.\n";
  return `${head}${packages.map((p) => `\n${"=".repeat(78)}\n${p.name}@${p.version} (${p.license})\n${"-".repeat(78)}\n${p.text}\n`).join("")}`;
}

/** Declaration files reachable from `entries`, and every import among them that leaves dist/. */
export function declarationClosure(entries) {
  const seen = new Set();
  const outside = [];
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const [, spec] of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\/\/\/\s*<reference\s+types=)["']([^"']+)["']/g)) {
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec).replace(/\.js$/, ".d.ts");
        if (!existsSync(target)) throw new Error(`${relative(ROOT, file)} imports ${spec}, which has no declaration file`);
        visit(target);
      } else outside.push({ file: relative(ROOT, file), spec });
    }
  };
  entries.forEach(visit);
  return { files: seen, outside };
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

/** What both builds share: Node 20 code that Bun also runs, minified, with names kept and licences shipped apart. */
const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: "node",
  target: "node20",
  minify: true,
  // Error classes take their `name` from the class (CiAuthError and kin); minified names would reach users.
  keepNames: true,
  // The licences are shipped whole in THIRD_PARTY_LICENSES instead.
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
};

/** pino and its dependencies as one CommonJS file, so that loading it is one synchronous require() when needed. */
async function buildPinoVendor(build) {
  return build({
    ...COMMON,
    stdin: { contents: 'module.exports = require("pino");', resolveDir: ROOT, sourcefile: "pino-vendor.cjs" },
    outfile: join(DIST, PINO_VENDOR),
    format: "cjs",
  });
}

/** The vendored pino is found relative to the file that requires it: only files directly in dist/ may. */
export function checkPinoRequires(dist = DIST) {
  const misplaced = listFiles(dist)
    .filter((file) => file.endsWith(".js") && readFileSync(file, "utf8").includes(PINO_REQUIRE))
    .filter((file) => dirname(file) !== dist);
  if (misplaced.length > 0) {
    throw new Error(
      `${misplaced.map((f) => relative(ROOT, f)).join(", ")} require ${PINO_VENDOR} but are not in dist/: keep src/log.ts out of the entry files`,
    );
  }
}

async function main() {
  const { build } = await import("esbuild");
  rmSync(DIST, { recursive: true, force: true });
  const vendor = await buildPinoVendor(build);
  const result = await build({
    ...COMMON,
    entryPoints: ENTRY_POINTS,
    outdir: DIST,
    // Shared code goes into chunks the entries import, so the plugin and `/lib` stay one copy of each module.
    splitting: true,
    format: "esm",
    // ESM builds first: jsonc-parser's `main` is a UMD file whose require() calls esbuild cannot follow.
    mainFields: ["module", "main"],
    // log.ts require()s the vendored pino, and bundled CommonJS requires Node built-ins: give the ESM output a real require.
    banner: { js: 'import{createRequire as __ocaRequire}from"node:module";const require=__ocaRequire(import.meta.url);' },
    plugins: [
      {
        name: "pino-vendor",
        setup(b) {
          b.onResolve({ filter: /^pino$/ }, () => ({ path: `./${PINO_VENDOR}`, external: true }));
        },
      },
    ],
  });
  checkPinoRequires();
  chmodSync(join(DIST, "cli", "main.js"), 0o755);

  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json", "--emitDeclarationOnly"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
  // tsc's declaration of the config types imports zod; replace it with the types printed out.
  await writeExpandedTypeAliases(
    join(ROOT, "src", "config", "types.ts"),
    join(ROOT, "tsconfig.build.json"),
    join(DIST, "config", "types.d.ts"),
  );
  const { files, outside } = declarationClosure([join(DIST, "index.d.ts"), join(DIST, "lib.d.ts")]);
  const forbidden = outside.filter((o) => !ALLOWED_DECLARATION_IMPORTS.test(o.spec));
  if (forbidden.length > 0) {
    throw new Error(
      `published declarations import packages the consumer does not get:\n${forbidden.map((o) => `  ${o.file}: ${o.spec}`).join("\n")}\n` +
        "declare the type in src/ instead of importing it from the dependency",
    );
  }
  for (const file of listFiles(DIST)) if (file.endsWith(".d.ts") && !files.has(file)) rmSync(file);
  for (const dir of readdirSync(DIST, { withFileTypes: true })) {
    if (dir.isDirectory() && listFiles(join(DIST, dir.name)).length === 0) rmSync(join(DIST, dir.name), { recursive: true });
  }

  const metafile = {
    inputs: { ...result.metafile.inputs, ...vendor.metafile.inputs },
    outputs: { ...result.metafile.outputs, ...vendor.metafile.outputs },
  };
  writeFileSync(join(DIST, LICENSES_FILE), renderLicenses(bundledPackages(metafile)));
  mkdirSync(dirname(METAFILE), { recursive: true });
  writeFileSync(METAFILE, JSON.stringify(metafile));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    process.stderr.write(`build failed: ${error.message}\n`);
    process.exitCode = 1;
  });
}
