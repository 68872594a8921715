import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Deadlines, not waits: a passing test is not slowed by them. They are sized for a shared 2-core runner where
    // another suite runs too (a CLI test that takes 2 s alone took 26 s there). Files that run the real opencode CLI
    // set their own, longer ones.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Packs and installs the package once per run: the e2e and CLI tests load it as a user's install would.
    globalSetup: ["test/support/global-setup.ts"],
    // @actions/workflow-parser imports its schema JSON without an import attribute, which Node refuses; let Vite
    // load it instead (test/ci/workflow-files.test.ts).
    server: { deps: { inline: ["@actions/workflow-parser"] } },
    maxWorkers: 2,
  },
});
