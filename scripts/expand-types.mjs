// The published declarations may not import zod (the bundle hides it from consumers), yet the configuration's types
// are zod's: src/config/types.ts derives them from the schemas, the one place a field is declared. This step writes
// dist/config/types.d.ts with each exported type alias of that file printed out in full by the TypeScript checker, so
// the declaration needs no import and can never drift from the schemas. Used by scripts/build.mjs after tsc.
import { writeFileSync } from "node:fs";
import * as prettier from "prettier";
import ts from "typescript";

const FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.InTypeAlias;

/** The text of a declaration file holding every exported type alias of `source`, expanded; throws on anything else. */
export function expandedTypeAliases(source, tsconfigPath) {
  const config = ts.getParsedCommandLineOfConfigFile(tsconfigPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (!config) throw new Error(`cannot read ${tsconfigPath}`);
  const program = ts.createProgram([source], { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(source);
  if (!file) throw new Error(`cannot read ${source}`);
  const problems = ts.getPreEmitDiagnostics(program, file);
  if (problems.length > 0)
    throw new Error(`${source} does not type-check: ${ts.flattenDiagnosticMessageText(problems[0].messageText, " ")}`);
  const out = [`// Written by scripts/expand-types.mjs from src/config/types.ts: the zod schemas' types, printed out.\n`];
  for (const statement of file.statements) {
    if (ts.isImportDeclaration(statement)) continue;
    const exported = statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (!ts.isTypeAliasDeclaration(statement) || !exported || statement.typeParameters) {
      throw new Error(`${source} may hold only imports and exported type aliases without parameters (the build expands them)`);
    }
    const printed = checker.typeToString(checker.getTypeAtLocation(statement.name), statement, FLAGS);
    if (/\bimport\(|\bz\.|\$Zod|\$Infer/.test(printed))
      throw new Error(`${statement.name.text} did not expand to plain types: ${printed.slice(0, 200)}`);
    const docs = ts.getJSDocCommentsAndTags(statement).map((d) => d.getText(file));
    out.push(`${docs.length > 0 ? `${docs.join("\n")}\n` : ""}export type ${statement.name.text} = ${printed};\n`);
  }
  return out.join("\n");
}

/** Writes the expanded aliases to `target`, laid out by Prettier so that a reader of the published file can follow them. */
export async function writeExpandedTypeAliases(source, tsconfigPath, target) {
  writeFileSync(target, await prettier.format(expandedTypeAliases(source, tsconfigPath), { parser: "typescript", printWidth: 120 }));
}
