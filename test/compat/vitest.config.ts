/**
 * `npm run test:compat` only (scripts/compat.ts): the core scenarios against one installed opencode version at a
 * time. Kept apart from vitest.config.ts so that `npm test` never downloads an opencode release.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/compat/**/*.compat.ts"],
    // Older releases start slower, and the machine may be busy: each test is one or two `opencode run`s.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Packs and installs the package once per run: the e2e and CLI tests load it as a user's install would.
    globalSetup: ["test/support/global-setup.ts"],
    maxWorkers: 1,
  },
});
