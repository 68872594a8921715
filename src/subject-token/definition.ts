/**
 * What one kind of subject-token source declares about itself, so that everything else is derived from a table
 * of these (sources.ts): the config schema and the list of `type`s, the factory, `auto`'s detection, doctor's
 * platform line, the claims worth showing (and doctor's notes on a token), and the environment variables that
 * hold credentials.
 *
 * A source's cache identity is its own `cacheIdentity()` (source.ts): it needs the running job's values.
 */
import type { JWTPayload } from "jose";
import type * as z from "zod/mini";
import type { SubjectTokenSource } from "./source.js";

/** What `auto` passes to the platform it detected: its own settings, common to every platform. */
export interface AutoSettings {
  audience?: string | undefined;
  /** GitLab: the `id_tokens` variable. */
  var: string;
  /** Azure Pipelines: the service connection id, when set. */
  serviceConnectionId?: string | undefined;
  /** Kubernetes: the projected token file. */
  path: string;
}

/** How a CI platform is recognised, for `auto` and for doctor's platform line. */
export interface PlatformDetection {
  /** The platform's name in messages: "GitHub Actions". */
  name: string;
  /** What is looked for, for messages: "GITHUB_ACTIONS=true". */
  signal: string;
  /** From environment variables only: detection never touches the network or the disk. */
  matches(env: NodeJS.ProcessEnv): boolean;
  /** Non-secret facts worth showing, as label → variable. */
  details: Readonly<Record<string, string>>;
  /**
   * The source `auto` uses on this platform. Throws `unusable(fix)` when `auto`'s settings cannot serve it (a
   * required setting is missing); the message then names the platform and the fix.
   */
  fromAuto(settings: AutoSettings, unusable: (fix: string) => never): SubjectTokenSource;
  /** Other source types that also suit this platform in doctor (Kubernetes: a `file` source on the projected token). */
  alsoFits?: readonly string[];
}

/** One kind of source. `Config` is its validated block. */
export interface SourceDefinition<Schema extends z.ZodMiniObject = z.ZodMiniObject> {
  /** The `subjectTokenSource.type`. */
  readonly type: z.output<Schema>["type"];
  /** The strict zod schema of its block, with `type` as a literal. */
  readonly schema: Schema;
  /** The source a validated block describes. */
  create(config: z.output<Schema>): SubjectTokenSource;
  /** Set for CI platforms that `auto` can detect. */
  readonly platform?: PlatformDetection;
  /** Top-level claims of its tokens that identify the job without being secret, for logs and doctor. */
  readonly summaryClaims?: readonly string[];
  /** Non-secret parts of object claims, shown under a name of their own: name → path into the payload. */
  readonly nestedSummaryClaims?: Readonly<Record<string, readonly string[]>>;
  /**
   * What doctor should say about a token of this platform beyond its claims: lines shown as they are, under the
   * claims (non-secret: built from claims). Asked of every token; a note keys on its platform's own claims.
   * GitHub: which form of `sub` the IdP must match.
   */
  notes?(payload: JWTPayload): string[];
  /**
   * The environment variables that hold this platform's credentials with its default settings: blanked in the
   * agent's shell whatever the config says (src/agent/). A configured source may add its own (a `var`).
   */
  readonly credentialEnv: readonly string[];
}

/** Identity, with the types checked: `defineSource({ … })` keeps the schema's own type for the table. */
export function defineSource<Schema extends z.ZodMiniObject>(definition: SourceDefinition<Schema>): SourceDefinition<Schema> {
  return definition;
}
