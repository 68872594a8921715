/**
 * The configuration's types: what the `oauth2` block may hold (`OAuth2Input`) and what parsing makes of it
 * (`OAuth2Config`, defaults filled in), derived from the zod schemas (config/schema.ts, subject-token/sources.ts),
 * the one place a field is declared. The published declarations may not import zod, which the bundle hides from
 * consumers, so the build prints these aliases out in full (scripts/expand-types.mjs): keep this file to imports and
 * exported type aliases.
 */
import type * as z from "zod/mini";

import type { SOURCES } from "../subject-token/sources.js";
import type { AUTH_FLOWS, oauth2Schema } from "./schema.js";

/** One `subjectTokenSource` after parsing, by `type`. */
export type SubjectTokenSourceConfig = ReturnType<(typeof SOURCES)[number]["schema"]["parse"]>;

/** The `oauth2` block as a user writes it. */
export type OAuth2Input = z.input<typeof oauth2Schema>;

/** One of the grants, `authFlow`. */
export type AuthFlow = (typeof AUTH_FLOWS)[number];

/** The `oauth2` block after parsing, with its defaults. */
export type OAuth2Config = z.output<typeof oauth2Schema>;
