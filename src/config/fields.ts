/**
 * zod building blocks shared by the `oauth2` schema and the sources' own schemas: a trimmed non-empty text field,
 * an http(s) URL that follows a transport rule, and the optional `audience`. Messages say how to fix, not only
 * what is wrong.
 *
 * The schemas use zod/mini, zod v4's functional form: the same core, parser and messages as `zod`, but schemas
 * carry no methods, so building them and loading zod costs a fraction (docs/performance.md, figure 3).
 */
import * as z from "zod/mini";
import { en } from "zod/locales";

// zod/mini leaves the locale to the application. English, as `zod` itself sets it, for the few checks that carry no
// message of ours; a locale someone else chose is kept.
if (!z.config().localeError) z.config(en());

export const text = (field: string) =>
  z
    .string({ error: (i) => (i.input === undefined ? `${field} is required` : `${field} must be a string`) })
    .check(
      z.trim(),
      z.minLength(1, { error: `${field} must not be empty (if it comes from {env:VAR}, check that VAR is set in the job)` }),
    );

/** An absolute http(s) URL that passes `rule` (a transport rule from http/transport.ts). */
export const tokenUrl = (field: string, rule: (url: URL) => string | undefined) =>
  z.pipe(text(field), z.url({ protocol: /^https?$/, error: `${field} must be an absolute http(s) URL` })).check(
    z.superRefine((value, ctx) => {
      // Runs even when the URL check above failed: only an http(s) URL has a transport rule to break.
      if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) return;
      const insecure = rule(new URL(value));
      if (insecure) ctx.addIssue({ code: "custom", message: `${insecure}; a token must not travel in clear text` });
    }),
  );

/** `subjectTokenSource.audience`: requested where the platform lets the job choose, checked locally everywhere. */
export const audience = z.optional(text("audience"));

/** A time limit in seconds, > 0 and ≤ 120, as `timeoutSeconds` fields take it. */
export const timeoutSeconds = (field: string, defaultSeconds: number) =>
  z._default(
    z
      .number({ error: `${field} must be a number of seconds` })
      .check(z.positive({ error: `${field} must be more than 0` }), z.maximum(120, { error: `${field} must be at most 120` })),
    defaultSeconds,
  );

/** A list given as an array or as one space- or comma-separated string (the docs' "list"). */
export const stringList = (field: string) =>
  z.pipe(
    z.union([z.array(text(field)), z.string()], { error: `${field} must be an array of strings or a space/comma-separated string` }),
    z.transform((v: string[] | string) => (Array.isArray(v) ? v : v.split(/[\s,]+/)).map((s) => s.trim()).filter((s) => s.length > 0)),
  );
