#!/usr/bin/env node
// What `npm publish` would upload, checked: the tarball holds dist/ (with the type declarations and the bundled
// packages' licences, dist/THIRD_PARTY_LICENSES), README.md, LICENSE and package.json, every file package.json points
// at (main, types, exports, bin), and nothing else: no tests, no sources, no CI files. package.json declares no
// runtime `dependencies`: they are bundled into dist/, so opencode's install of the plugin fetches one tarball. Run after a build (`npm test` builds first; so does `npm run build`):
//   node scripts/pack-check.mjs
// It lists the files with `npm pack --dry-run --json --ignore-scripts`, so it never rebuilds dist/ under running tests.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TOP_LEVEL = new Set(["package.json", "README.md", "LICENSE"]);
const TEST_FILE = /(^|\/)(__tests__|tests?|spec|fixtures?)\/|\.(test|spec)\.[cm]?[jt]sx?$|\.d\.(test|spec)\./;

/** Every file path package.json makes a consumer load. */
export function referencedFiles(manifest) {
  const found = new Set();
  const add = (value) => {
    if (typeof value === "string") found.add(value.replace(/^\.\//, ""));
    else if (value && typeof value === "object") Object.values(value).forEach(add);
  };
  add(manifest.main);
  add(manifest.types);
  add(manifest.typings);
  add(manifest.exports);
  add(typeof manifest.bin === "string" ? manifest.bin : (manifest.bin ?? {}));
  return [...found].filter((path) => !path.includes("*")).sort();
}

/** Problems with a packed file list (paths relative to the package root); empty when the tarball is right. */
export function checkPack(files, manifest) {
  const problems = [];
  const have = new Set(files);
  const dependencies = Object.keys(manifest.dependencies ?? {});
  if (dependencies.length > 0) {
    problems.push(
      `package.json has runtime dependencies (${dependencies.join(", ")}): the build bundles them, so list them in devDependencies`,
    );
  }
  for (const required of [
    ...TOP_LEVEL,
    "dist/index.js",
    "dist/index.d.ts",
    "dist/lib.js",
    "dist/lib.d.ts",
    "dist/cli/main.js",
    "dist/THIRD_PARTY_LICENSES",
  ]) {
    if (!have.has(required)) problems.push(`missing ${required}`);
  }
  for (const path of referencedFiles(manifest)) {
    if (!have.has(path)) problems.push(`package.json points at ${path}, which is not in the tarball`);
    if (path.endsWith(".js") && !path.startsWith("dist/cli/") && !have.has(path.replace(/\.js$/, ".d.ts"))) {
      problems.push(`${path} ships without its declaration ${path.replace(/\.js$/, ".d.ts")}`);
    }
  }
  for (const path of files) {
    if (TEST_FILE.test(path)) problems.push(`a test file would be published: ${path}`);
    else if (!TOP_LEVEL.has(path) && !path.startsWith("dist/")) problems.push(`a file outside dist/ would be published: ${path}`);
  }
  return problems;
}

function main() {
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const output = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    shell: process.platform === "win32",
  });
  const [pack] = JSON.parse(output);
  const files = pack.files.map((f) => f.path.replaceAll("\\", "/")).sort();
  const problems = checkPack(files, manifest);
  process.stdout.write(`${pack.filename}: ${files.length} files, ${pack.size} bytes packed, ${pack.unpackedSize} unpacked\n`);
  if (problems.length > 0) {
    process.stderr.write(`pack check failed:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(
    "pack check passed: dist/ with declarations and licences, README.md, LICENSE, package.json, no dependencies, no tests\n",
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
