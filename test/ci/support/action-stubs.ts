/**
 * Stand-ins for the actions whose work only GitHub can do, for test/ci/support/action-runner.ts. Each one keeps the
 * contract the workflow files rely on (inputs read, outputs set, post step) and records its calls.
 *
 * - actions/setup-node downloads a Node build listed in GitHub's manifest and prepends it to PATH. Here the machine's
 *   node stands in: the stub records the requested version and sets the `node-version` output.
 * - actions/cache talks to GitHub's cache service. The stub keeps entries in a directory: a restore with an exact
 *   `key` copies the saved `path`s back and sets `cache-hit` to "true"; otherwise `cache-hit` is "false" and its post
 *   step saves the `path`s that exist under `key`, as the real post step does after a successful job.
 * - actions/checkout clones the repository. The tests lay the workspace out before the job, so the stub checks only
 *   that it is never asked to check out a pull request's head.
 * - actions/upload-artifact and actions/download-artifact talk to artifact storage; the stubs copy into and out of a
 *   directory per artifact name, and upload fails on a missing path as `if-no-files-found: error` does.
 */
import { randomUUID } from "node:crypto";
import { cp, mkdir, readdir, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";

import type { Strings, Stub, StubCall } from "./action-runner.js";

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );
const lines = (text: string | undefined) =>
  (text ?? "")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);

export interface Recorded<T> {
  stub: Stub;
  calls: T[];
}

export function setupNodeStub(): Recorded<Strings> {
  const calls: Strings[] = [];
  return {
    calls,
    stub: (call) => {
      calls.push(call.with);
      return { outputs: { "node-version": process.version } };
    },
  };
}

export interface CacheCall {
  key: string;
  paths: string[];
  hit: boolean;
  saved?: boolean;
}

/** A cache store that outlives one job, so a second job can restore what the first saved. */
export function cacheStub(storeDir: string): Recorded<CacheCall> & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  const calls: CacheCall[] = [];
  const stub: Stub = async ({ with: inputs }: StubCall) => {
    const key = inputs.key ?? "";
    const paths = lines(inputs.path);
    if (!key || paths.length === 0) return { failed: "actions/cache: key and path are required" };
    const call: CacheCall = { key, paths, hit: entries.has(key) };
    calls.push(call);
    const saved = entries.get(key);
    if (saved) {
      for (const [index, path] of paths.entries()) {
        const from = join(saved, String(index));
        if (await exists(from)) await cp(from, path, { recursive: true, verbatimSymlinks: true });
      }
      return { outputs: { "cache-hit": "true" } };
    }
    return {
      outputs: { "cache-hit": "false" },
      post: async () => {
        const dir = join(storeDir, randomUUID());
        let any = false;
        for (const [index, path] of paths.entries()) {
          if (!(await exists(path))) continue;
          await cp(path, join(dir, String(index)), { recursive: true, verbatimSymlinks: true });
          any = true;
        }
        if (any) {
          entries.set(key, dir);
          call.saved = true;
        }
      },
    };
  };
  return { stub, calls, entries };
}

export function checkoutStub(): Recorded<Strings> {
  const calls: Strings[] = [];
  return {
    calls,
    stub: (call) => {
      calls.push(call.with);
      if (call.with.ref && /head/.test(call.with.ref)) return { failed: `refusing to check out ${call.with.ref}` };
      return {};
    },
  };
}

export interface Artifacts {
  dir: string;
  upload: Recorded<Strings>;
  download: Recorded<Strings>;
  /** The files of an uploaded artifact, by name. */
  files(name: string): Promise<string[]>;
}

export function artifactStubs(dir: string): Artifacts {
  const uploads: Strings[] = [];
  const downloads: Strings[] = [];
  const upload: Stub = async ({ with: inputs }) => {
    uploads.push(inputs);
    const name = inputs.name || "artifact";
    const target = join(dir, name);
    if (await exists(target)) return { failed: `an artifact named ${name} already exists` };
    const found = [];
    for (const path of lines(inputs.path)) if (await exists(path)) found.push(path);
    if (found.length === 0) return inputs["if-no-files-found"] === "ignore" ? {} : { failed: `no files found at ${inputs.path}` };
    await mkdir(target, { recursive: true });
    for (const path of found) await cp(path, join(target, basename(path)), { recursive: true });
    return { outputs: { "artifact-id": "1" } };
  };
  const download: Stub = async ({ with: inputs, env }) => {
    downloads.push(inputs);
    const source = join(dir, inputs.name ?? "");
    if (!(await exists(source))) return { failed: `no artifact named ${inputs.name}` };
    const target = inputs.path ? join(env.GITHUB_WORKSPACE ?? "", inputs.path) : (env.GITHUB_WORKSPACE ?? "");
    await cp(source, target, { recursive: true });
    return { outputs: { "download-path": target } };
  };
  return {
    dir,
    upload: { stub: upload, calls: uploads },
    download: { stub: download, calls: downloads },
    async files(name) {
      return (await readdir(join(dir, name)).catch(() => [] as string[])).sort();
    },
  };
}

export async function clear(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
