/** An environment variable holding the JWT, for platforms that export one (or a previous step that did). */
import { SubjectTokenUnavailableError } from "../errors.js";
import { tokenBoundIdentity, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience, text } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "env";

export class EnvSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly variable: string;
  readonly credentialEnv: readonly string[];

  constructor(variable: string, audience: string | undefined) {
    this.variable = variable;
    this.credentialEnv = [variable];
    this.expectedAudience = audience;
  }

  /** The settings plus a fingerprint of the token itself: the same token means the same job identity. */
  cacheIdentity(context: SubjectTokenContext): Promise<string | undefined> {
    return tokenBoundIdentity(this, context, [this.variable]);
  }

  async getSubjectToken({ providerId, env }: SubjectTokenContext): Promise<string> {
    const value = env[this.variable]?.trim();
    if (!value) {
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `the variable ${this.variable} is not set or empty. Export the job's OIDC token in it, or fix subjectTokenSource.var.`,
        { providerId },
      );
    }
    return value;
  }
}

export const env = defineSource({
  type: SOURCE,
  schema: z.strictObject({ type: z.literal(SOURCE), var: text("var"), audience }),
  create: (config) => new EnvSource(config.var, config.audience),
  // Its `var` is the configured source's own (EnvSource.credentialEnv).
  credentialEnv: [],
});
