/**
 * The files of a published npm tarball, and the integrity string the registry publishes for it: what `prepare` compares
 * a cached install with before it lets opencode load it. The same rules as the setup action's content check
 * (.github/actions/setup/content-check.mjs), which must stay dependency-free and runs outside this package.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { gunzipSync } from "node:zlib";

/** `sha512-<base64>`, the form of `dist.integrity`. */
export function integrityOf(bytes: Buffer): string {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/** The `key=value` records of a pax header; each starts with its length in bytes. */
function paxPath(body: Buffer): string | undefined {
  let found: string | undefined;
  for (let at = 0; at < body.length;) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString("ascii"));
    if (space === -1 || !(length > 0)) break;
    const record = body.subarray(space + 1, at + length - 1).toString("utf8");
    if (record.startsWith("path=")) found = record.slice(5);
    at += length;
  }
  return found;
}

/**
 * The regular files of a gzipped npm tarball, by path inside the package (npm's top folder removed), as npm extracts
 * them: links and directories create no file, a later entry replaces an earlier one. Throws on an entry outside the
 * package.
 */
export function tarballFiles(gzipped: Buffer): Map<string, Buffer> {
  const tar = gunzipSync(gzipped);
  const files = new Map<string, Buffer>();
  let longName: string | undefined;
  let pax: string | undefined;
  for (let offset = 0; offset + 512 <= tar.length;) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    if ((header[124] ?? 0) & 0x80) throw new Error("the tarball holds a file too large to check");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1) || "0";
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === "L") {
      longName = body.toString("utf8").replace(/\0.*$/s, "");
      continue;
    }
    if (type === "x") {
      pax = paxPath(body) ?? pax;
      continue;
    }
    if (type === "g" || type === "K") continue;
    const prefix = field(345, 155);
    const name = pax ?? longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    pax = undefined;
    longName = undefined;
    if (type !== "0" && type !== "7") continue;
    const path = posix.normalize(name.replaceAll("\\", "/")).split("/").slice(1).join("/");
    if (!path || path.startsWith("../")) throw new Error(`the tarball holds a file outside its package: ${name}`);
    files.set(path, body);
  }
  return files;
}
