/**
 * Type-checks src/ against another release's `@opencode-ai/plugin` (the types the plugin imports: `Plugin`,
 * `Config`), for `npm run test:compat`: the peerDependencies range claims those types fit. Same compiler options as
 * the project's tsconfig.json; only where `@opencode-ai/plugin` resolves to changes.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The compiler's errors, or an empty list when src/ type-checks against the package in `pluginDir`. */
export async function pluginTypeErrors(repoRoot: string, pluginDir: string, workDir: string): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(pluginDir, "package.json"), "utf8")) as {
    types?: string;
    exports?: { ".": { types?: string } };
  };
  const types = manifest.exports?.["."]?.types ?? manifest.types;
  if (!types) return [`${pluginDir}/package.json names no types`];
  const tsconfig = join(workDir, "tsconfig.plugin-types.json");
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: join(repoRoot, "tsconfig.json"),
      compilerOptions: {
        noEmit: true,
        typeRoots: [join(repoRoot, "node_modules", "@types")],
        paths: { "@opencode-ai/plugin": [join(pluginDir, types)] },
      },
      include: [join(repoRoot, "src")],
    }),
  );
  try {
    await run(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return [];
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    return (e.stdout ?? e.message).split("\n").filter((l) => /error TS\d+/.test(l));
  }
}
