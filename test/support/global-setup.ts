/**
 * vitest's global setup: packs and installs this package once per run (test/support/packed-package.ts) and hands
 * the install's paths to the tests; removes it afterwards.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { packAndInstall } from "./packed-package.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const scratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-packed-"));
  project.provide("packedPackage", await packAndInstall(REPO_ROOT, scratch));
  return () => rm(scratch, { recursive: true, force: true });
}
