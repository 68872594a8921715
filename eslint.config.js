// Flat config: typescript-eslint's recommended rules, a ban on console in src/ (stdout belongs to `opencode run`),
// and the layers of src/ (docs/architecture.md#layers): imports flow down, from the hooks and the CLI to the sources.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** A layer may not import from the layers above it: `from` is the glob of its files, `above` what it may not import. */
const layer = (name, files, above) => ({
  files,
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: [
          {
            group: above,
            message: `${name} may not import from a layer above it (docs/architecture.md#layers): imports flow from the hooks and the CLI down to the sources.`,
          },
        ],
      },
    ],
  },
});

const ENTRY_POINTS = ["**/plugin.js", "**/lib.js", "**/index.js", "**/cli/*"];
const CHAIN = [
  "**/token-provider.js",
  "**/token-provider-pool.js",
  "**/subject-token-rules.js",
  "**/inspection.js",
  "**/hooks/*",
  "**/agent/*",
];
const PARTS = ["**/grant/*", "**/cache/*", "**/subject-token/*", "**/expect-claims.js", "**/retry.js"];
const CONFIG = [
  "**/config/schema.js",
  "**/config/parse.js",
  "**/config/source-schema.js",
  "**/config/allow-lists.js",
  "**/config/env-references.js",
];

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".tmp/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["src/**/*.ts"],
    rules: {
      "no-console": "error",
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  // Everything but the entry points: nothing imports the plugin, the library surface or the CLI.
  layer("src/ (below its entry points)", ["src/**/*.ts"], ENTRY_POINTS),
  { files: ["src/index.ts", "src/lib.ts", "src/plugin.ts", "src/cli/**/*.ts"], rules: { "no-restricted-imports": "off" } },
  // The hooks and the agent's guards sit on the chain; they never reach into each other's entry points.
  layer("src/hooks/ and src/agent/", ["src/hooks/**/*.ts", "src/agent/**/*.ts"], ENTRY_POINTS),
  // The parts of the chain: a grant, a cache, a source, know nothing of the chain that combines them.
  layer("src/grant/", ["src/grant/**/*.ts"], [...ENTRY_POINTS, ...CHAIN, "**/cache/*", "**/subject-token/*"]),
  layer("src/cache/", ["src/cache/**/*.ts"], [...ENTRY_POINTS, ...CHAIN, "**/grant/*", "**/subject-token/*", "**/config/*"]),
  layer("src/subject-token/", ["src/subject-token/**/*.ts"], [...ENTRY_POINTS, ...CHAIN, "**/grant/*", "**/cache/*", ...CONFIG]),
  // The config layer reads the sources' schemas (the table) and nothing of the chain.
  layer("src/config/", ["src/config/**/*.ts"], [...ENTRY_POINTS, ...CHAIN, "**/grant/*", "**/cache/*"]),
  // The leaves: errors, logging, scrubbing, HTTP rules, defaults and field builders import no other layer.
  layer(
    "the leaf modules",
    [
      "src/errors.ts",
      "src/log.ts",
      "src/scrub.ts",
      "src/describe-failure.ts",
      "src/canonical-json.ts",
      "src/access-token.ts",
      "src/http/**/*.ts",
      "src/config/defaults.ts",
      "src/config/fields.ts",
    ],
    [...ENTRY_POINTS, ...CHAIN, ...PARTS, ...CONFIG],
  ),
);
