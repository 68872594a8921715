/**
 * The zod schema of `oauth2.subjectTokenSource`: the schemas of every source in the table (subject-token/sources.ts),
 * joined on `type`. Each source declares its own schema next to its code; defaults come from defaults.ts.
 * docs/configuration.md mirrors them.
 */
import * as z from "zod/mini";
import { SOURCES, SOURCE_TYPES, type SubjectTokenSourceConfig } from "../subject-token/sources.js";

export { SOURCE_TYPES, type SubjectTokenSourceConfig };

type SchemasOf<T extends readonly { schema: unknown }[]> = { -readonly [K in keyof T]: T[K]["schema"] };

const schemas = SOURCES.map((s) => s.schema) as unknown as SchemasOf<typeof SOURCES>;

export const subjectTokenSourceSchema = z.discriminatedUnion("type", schemas, {
  error: (issue) =>
    issue.code === "invalid_union"
      ? `type must be one of ${SOURCE_TYPES.map((t) => `"${t}"`).join(", ")}`
      : 'subjectTokenSource must be an object such as { "type": "github_actions", "audience": "…" }',
});
