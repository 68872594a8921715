// The content check of the setup action (setup.mjs `inventory` and `check`). An install that is already in place,
// restored from the cache or left by an earlier job, is code that opencode will load into a job that can mint
// tokens, and anyone who could write the cache entry or the runner's disk chose its files. It is trusted only when
// every file of every package in it is byte for byte the file of that package's published tarball, each tarball
// matches the registry's `dist.integrity`, and the tree is the one npm would build (checked by `npm ls`).
// Pure Node, no dependencies: gzip from node:zlib, and a reader for the ustar/pax archives npm publishes.
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import { gunzipSync } from "node:zlib";

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]{0,213}$/;
/** The records npm writes beside an install. Nothing checks them and opencode 1.18 never reads them, so they go. */
const NPM_RECORDS = ["package-lock.json", join("node_modules", ".package-lock.json")];

/** A reason not to use the install; collected, then reported together. */
export class Mismatch extends Error {}

/**
 * The regular files of an npm tarball (gzipped tar), by path inside the package (the top folder, `package/` by
 * npm's convention, removed), as npm extracts them: links are skipped, a later entry replaces an earlier one.
 */
export function tarballFiles(gzipped) {
  const tar = gunzipSync(gzipped);
  const files = new Map();
  let longName;
  let paxPath;
  for (let offset = 0; offset + 512 <= tar.length;) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start, length) =>
      header
        .subarray(start, start + length)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    if (header[124] & 0x80) throw new Mismatch("the tarball holds a file too large to check");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1) || "0";
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === "L") {
      longName = body.toString("utf8").replace(/\0.*$/s, "");
      continue;
    }
    if (type === "x") {
      paxPath = paxRecords(body).path ?? paxPath;
      continue;
    }
    if (type === "g" || type === "K") continue;
    const prefix = field(345, 155);
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    paxPath = undefined;
    longName = undefined;
    if (type !== "0" && type !== "7") continue; // directories, links and devices: npm creates no file for them
    const path = posix.normalize(name.replaceAll("\\", "/")).split("/").slice(1).join("/");
    if (!path || path.startsWith("../")) throw new Mismatch(`the tarball holds a file outside its package: ${name}`);
    files.set(path, body);
  }
  return files;
}

/** The `key=value` records of a pax header; each starts with its length in bytes. */
function paxRecords(body) {
  const records = {};
  for (let at = 0; at < body.length;) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString("ascii"));
    if (space === -1 || !(length > 0)) break;
    const record = body.subarray(space + 1, at + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    records[record.slice(0, equals)] = record.slice(equals + 1);
    at += length;
  }
  return records;
}

/** `sha512-<base64>`, the form of `dist.integrity`. */
export function integrityOf(bytes) {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/** Removes npm's records of the install (see NPM_RECORDS) from `dir`. */
export function forgetNpmRecords(dir) {
  for (const record of NPM_RECORDS) rmSync(join(dir, record), { force: true });
}

/**
 * The packages of the install in `dir`, as `{ path, name, version }` (path relative to `dir`, with `/`), in a fixed
 * order. Throws a Mismatch when the directory holds anything but `package.json`, holding exactly
 * `{"dependencies":{"<plugin>":"<version>"}}`, and `node_modules` made only of package folders.
 */
export function inventory(dir, plugin, version) {
  const top = readdirSync(dir).sort();
  const unexpected = top.filter((entry) => entry !== "package.json" && entry !== "node_modules");
  if (unexpected.length > 0)
    throw new Mismatch(`${dir} holds ${unexpected.map((e) => `"${e}"`).join(", ")}, which npm does not write there`);
  const manifest = readFileSync(join(dir, "package.json"), "utf8");
  let parsed;
  try {
    parsed = JSON.parse(manifest);
  } catch {
    throw new Mismatch(`${join(dir, "package.json")} is not JSON`);
  }
  if (JSON.stringify(parsed) !== JSON.stringify({ dependencies: { [plugin]: version } })) {
    throw new Mismatch(`${join(dir, "package.json")} is not {"dependencies":{"${plugin}":"${version}"}}`);
  }
  const packages = [];
  collect(dir, "node_modules", packages);
  return packages;
}

/** The package folders in `<dir>/<modules>` (a node_modules folder), and theirs, depth first. */
function collect(dir, modules, packages) {
  const entries = readdirSync(join(dir, modules)).sort();
  for (const entry of entries) {
    const path = `${modules}/${entry}`;
    if (entry.startsWith("@")) {
      directory(dir, path);
      for (const scoped of readdirSync(join(dir, path)).sort()) addPackage(dir, `${path}/${scoped}`, `${entry}/${scoped}`, packages);
    } else {
      addPackage(dir, path, entry, packages);
    }
  }
}

function addPackage(dir, path, expectedName, packages) {
  directory(dir, path);
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, path, "package.json"), "utf8"));
  } catch {
    throw new Mismatch(`${join(dir, path)} is not a package (no readable package.json)`);
  }
  if (manifest.name !== expectedName || !NAME.test(expectedName))
    throw new Mismatch(`${join(dir, path)} holds a package named ${JSON.stringify(manifest.name)}`);
  if (typeof manifest.version !== "string" || !SEMVER.test(manifest.version)) throw new Mismatch(`${join(dir, path)} has no valid version`);
  packages.push({ path, name: manifest.name, version: manifest.version });
  if (readdirSync(join(dir, path)).includes("node_modules")) {
    directory(dir, `${path}/node_modules`);
    collect(dir, `${path}/node_modules`, packages);
  }
}

/** Throws unless `<dir>/<path>` is a real directory (a link could lead anywhere). */
function directory(dir, path) {
  const stat = lstatSync(join(dir, path));
  if (!stat.isDirectory())
    throw new Mismatch(
      `${join(dir, path)} is ${stat.isSymbolicLink() ? "a symbolic link" : "not a directory"}, which npm does not make there`,
    );
}

/** The files of the package folder `<dir>/<path>`, relative to it, without its own node_modules (other packages). */
function packageFiles(dir, path) {
  const files = new Map();
  const walk = (relative) => {
    for (const entry of readdirSync(join(dir, path, relative)).sort()) {
      const inside = relative ? `${relative}/${entry}` : entry;
      if (inside === "node_modules") continue;
      const stat = lstatSync(join(dir, path, inside));
      if (stat.isDirectory()) walk(inside);
      else if (stat.isFile()) files.set(inside, join(dir, path, inside));
      else
        throw new Mismatch(
          `${join(dir, path, inside)} is ${stat.isSymbolicLink() ? "a symbolic link" : "not a regular file"}, which npm does not extract`,
        );
    }
  };
  walk("");
  return files;
}

/**
 * Differences between the package folder `<dir>/<pkg.path>` and the files of its tarball, as messages (at most
 * `limit`); empty when they are the same files with the same bytes.
 */
export function differences(dir, pkg, published, limit = 5) {
  const found = [];
  const spec = `${pkg.name}@${pkg.version}`;
  for (const path of published.keys()) {
    if (path === "node_modules" || path.startsWith("node_modules/"))
      throw new Mismatch(`${spec} bundles its dependencies, which this check does not cover`);
  }
  const onDisk = packageFiles(dir, pkg.path);
  for (const [path, bytes] of published) {
    const file = onDisk.get(path);
    if (file === undefined) found.push(`${dir}/${pkg.path}/${path} is missing`);
    else if (!readFileSync(file).equals(bytes))
      found.push(`${dir}/${pkg.path}/${path} differs from the file in ${spec}'s published tarball`);
  }
  for (const path of onDisk.keys())
    if (!published.has(path)) found.push(`${dir}/${pkg.path}/${path} is not in ${spec}'s published tarball`);
  return found.slice(0, limit);
}
