import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The e2e files spawn the real opencode CLI (~3-5 s a run); give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // @actions/workflow-parser imports its schema JSON without an import attribute, which Node refuses; let Vite
    // load it instead (test/ci/workflow-files.test.ts).
    server: { deps: { inline: ["@actions/workflow-parser"] } },
    maxWorkers: 2,
  },
});
