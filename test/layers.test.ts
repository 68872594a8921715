/**
 * The layers of src/ (docs/architecture.md#layers) are enforced by lint: a wrong import fails `npm run lint` with a
 * message that names the rule. Each case lints one line of code as if it were a file of that layer, with the
 * project's own eslint.config.js.
 */
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const eslint = new ESLint();

async function messagesFor(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport const used = x;\n`, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("layers", () => {
  it.each([
    ["src/subject-token/new-platform.ts", 'import { x } from "../grant/grant.js";', "src/subject-token/"],
    ["src/subject-token/new-platform.ts", 'import { x } from "../token-provider.js";', "src/subject-token/"],
    ["src/subject-token/new-platform.ts", 'import { x } from "../config/schema.js";', "src/subject-token/"],
    ["src/grant/new.ts", 'import { x } from "../subject-token/sources.js";', "src/grant/"],
    ["src/cache/new.ts", 'import { x } from "../grant/grant.js";', "src/cache/"],
    ["src/config/new.ts", 'import { x } from "../token-provider.js";', "src/config/"],
    ["src/http/new.ts", 'import { x } from "../config/schema.js";', "the leaf modules"],
    ["src/errors.ts", 'import { x } from "./subject-token/source.js";', "the leaf modules"],
    ["src/hooks/new.ts", 'import { x } from "../cli/doctor.js";', "src/hooks/ and src/agent/"],
    ["src/token-provider.ts", 'import { x } from "./plugin.js";', "src/ (below its entry points)"],
  ])("%s: `%s` is refused, naming the rule", async (file, code, layer) => {
    const messages = await messagesFor(file, code);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(`${layer} may not import from a layer above it (docs/architecture.md#layers)`);
  });

  it.each([
    ["src/subject-token/new-platform.ts", 'import { x } from "../config/fields.js";'],
    ["src/subject-token/new-platform.ts", 'import { x } from "../errors.js";'],
    ["src/config/new.ts", 'import { x } from "../subject-token/sources.js";'],
    ["src/token-provider.ts", 'import { x } from "./grant/grant.js";'],
    ["src/cli/new.ts", 'import { x } from "../inspection.js";'],
  ])("%s: `%s` is allowed", async (file, code) => {
    expect(await messagesFor(file, code)).toEqual([]);
  });
});
