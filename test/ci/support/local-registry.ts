/**
 * A tiny npm registry on 127.0.0.1, enough for `npm view`, `npm install` and opencode's own arborist install:
 * packuments at `/<name>`, tarballs at `/-/tarballs/<file>`, 404 for everything else. It serves real tarballs (this
 * repository's `npm pack`, its dependencies' registry tarballs) and records every request, so a test can prove that a
 * later step fetched nothing.
 */
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { integrityOf, tarballFiles } from "../../../src/cli/package-tarball.js";

const run = promisify(execFile);

export interface RegistryRequest {
  method: string;
  /** Decoded path, e.g. `/opencode-ci-auth` or `/-/tarballs/opencode-ci-auth-0.2.1.tgz`. */
  path: string;
  /** Who asked: npm's CLI says `npm/<version> node/<version> …`; opencode's own installs run npm's code under Bun. */
  userAgent: string;
}

/**
 * Whether npm's CLI on this Node made the request (the user agent names `node/<this version>`), as a CI job's or
 * the setup action's npm does. opencode's own installs run npm's code under Bun, which reports another Node version.
 */
export function fromNpmOnThisNode(request: RegistryRequest): boolean {
  return request.userAgent.includes(`node/${process.version} `);
}

interface Version {
  manifest: Record<string, unknown>;
  file: string;
  tarball: Buffer;
  integrity: string;
  shasum: string;
}

export interface LocalRegistry {
  /** `http://127.0.0.1:<port>/` (with the trailing slash npm writes in its config). */
  url: string;
  requests: RegistryRequest[];
  /** Adds a tarball; the last one published under a tag (default `latest`) owns the tag, as with `npm publish`. */
  publish(tarball: Buffer, options?: { tag?: string | null }): { name: string; version: string };
  setTag(name: string, tag: string, version: string): void;
  /** Requests whose path names `name` (its packument or one of its tarballs). */
  requestsFor(name: string): RegistryRequest[];
  close(): Promise<void>;
}

/** `package.json` of an npm tarball, read with the tarball reader `prepare` uses (src/cli/package-tarball.ts). */
export function readTarballManifest(tarball: Buffer): Record<string, unknown> {
  const manifest = tarballFiles(tarball).get("package.json");
  if (!manifest) throw new Error("no package.json at the top of the tarball");
  return JSON.parse(manifest.toString("utf8")) as Record<string, unknown>;
}

function compareSemver(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = "", pre] = v.split("+")[0]!.split(/-(.*)/s);
    return { nums: core.split(".").map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if ((x.nums[i] ?? 0) !== (y.nums[i] ?? 0)) return (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export async function startLocalRegistry(): Promise<LocalRegistry> {
  const packages = new Map<string, { versions: Map<string, Version>; tags: Record<string, string> }>();
  const files = new Map<string, Version>();
  const requests: RegistryRequest[] = [];
  let url = "";

  const packument = (name: string) => {
    const entry = packages.get(name);
    if (!entry) return undefined;
    const versions = [...entry.versions.keys()].sort(compareSemver);
    const time: Record<string, string> = {};
    versions.forEach((v, i) => (time[v] = new Date(Date.UTC(2025, 0, 1 + i)).toISOString()));
    return {
      _id: name,
      name,
      "dist-tags": entry.tags,
      time,
      versions: Object.fromEntries(
        versions.map((v) => {
          const version = entry.versions.get(v)!;
          return [
            v,
            {
              ...version.manifest,
              _id: `${name}@${v}`,
              dist: {
                tarball: `${url}-/tarballs/${encodeURIComponent(version.file)}`,
                integrity: version.integrity,
                shasum: version.shasum,
              },
            },
          ];
        }),
      ),
    };
  };

  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/");
    requests.push({ method: req.method ?? "GET", path, userAgent: req.headers["user-agent"] ?? "" });
    const send = (status: number, body: Buffer | string, type = "application/json") => {
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, '{"error":"method not allowed"}');
    if (path.startsWith("/-/tarballs/")) {
      const version = files.get(path.slice("/-/tarballs/".length));
      return version ? send(200, version.tarball, "application/octet-stream") : send(404, '{"error":"not found"}');
    }
    const body = packument(path.slice(1));
    return body ? send(200, JSON.stringify(body)) : send(404, '{"error":"not found"}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  return {
    url,
    requests,
    publish(tarball, options = {}) {
      const manifest = readTarballManifest(tarball);
      const name = String(manifest.name);
      const version = String(manifest.version);
      const entry = packages.get(name) ?? { versions: new Map<string, Version>(), tags: {} };
      packages.set(name, entry);
      const file = `${name.replace("/", "-")}-${version}.tgz`;
      const record: Version = {
        manifest,
        file,
        tarball,
        integrity: integrityOf(tarball),
        shasum: createHash("sha1").update(tarball).digest("hex"),
      };
      entry.versions.set(version, record);
      files.set(file, record);
      const tag = options.tag === undefined ? "latest" : options.tag;
      if (tag) entry.tags[tag] = version;
      else entry.tags.latest ??= version;
      return { name, version };
    },
    setTag(name, tag, version) {
      const entry = packages.get(name);
      if (!entry?.versions.has(version)) throw new Error(`${name}@${version} is not published here`);
      entry.tags[tag] = version;
    },
    requestsFor(name) {
      return requests.filter((r) => r.path === `/${name}` || r.path.startsWith(`/-/tarballs/${name.replace("/", "-")}-`));
    },
    close() {
      return new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

interface LockEntry {
  version?: string;
  integrity?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
}

/**
 * The registry tarballs of the packages at `lockPaths` (keys of package-lock.json's `packages`): from the npm
 * cache when it holds them (the exact bytes the registry served), otherwise `npm pack` of the installed folder.
 */
export async function lockedTarballs(repoRoot: string, lockPaths: string[], scratch: string): Promise<Buffer[]> {
  const lock = JSON.parse(await readFile(join(repoRoot, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
  const { stdout } = await run("npm", ["config", "get", "cache"], { cwd: repoRoot });
  const content = join(stdout.trim(), "_cacache", "content-v2");
  const found: Buffer[] = [];
  const toPack: string[] = [];
  for (const path of lockPaths) {
    const entry = lock.packages[path];
    if (!entry) throw new Error(`${path} is not in package-lock.json`);
    const [algorithm, digest] = (entry.integrity ?? "").split("-", 2);
    const hex = digest ? Buffer.from(digest, "base64").toString("hex") : "";
    const cached = hex ? join(content, algorithm ?? "", hex.slice(0, 2), hex.slice(2, 4), hex.slice(4)) : "";
    if (cached && existsSync(cached)) found.push(await readFile(cached));
    else toPack.push(join(repoRoot, path));
  }
  if (toPack.length > 0) {
    await mkdir(scratch, { recursive: true });
    const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch, ...toPack], {
      cwd: scratch,
      maxBuffer: 64 << 20,
    });
    for (const { filename } of JSON.parse(packed.stdout) as Array<{ filename: string }>)
      found.push(await readFile(join(scratch, filename)));
  }
  return found;
}

/** package-lock.json paths of this package's runtime dependency closure (no dev, no optional platform binaries). */
export async function runtimeLockPaths(repoRoot: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(repoRoot, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path !== "" && !entry.dev && !entry.optional && !entry.devOptional)
    .map(([path]) => path);
}
