/**
 * A file holding the JWT. Re-read for every grant, because whoever writes it (kubelet, a sidecar, an earlier
 * step) may rotate it at any time.
 */
import { readFile } from "node:fs/promises";
import { SubjectTokenUnavailableError } from "../errors.js";
import { tokenBoundIdentity, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience, text } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "file";

export class FileSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** None in the environment: this source reads a file, a server or a program. */
  readonly credentialEnv: readonly string[] = [];
  readonly path: string;

  constructor(path: string, audience: string | undefined) {
    this.path = path;
    this.expectedAudience = audience;
  }

  /** The settings plus a fingerprint of the token itself: the same token means the same job identity. */
  cacheIdentity(context: SubjectTokenContext): Promise<string | undefined> {
    return tokenBoundIdentity(this, context, [this.path]);
  }

  async getSubjectToken({ providerId }: SubjectTokenContext): Promise<string> {
    let content: string;
    try {
      content = await readFile(this.path, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT"
          ? "does not exist"
          : code === "EACCES"
            ? "is not readable by this user"
            : `cannot be read (${code ?? "unknown error"})`;
      throw new SubjectTokenUnavailableError(
        SOURCE,
        `the token file ${this.path} ${why}. Write the job's OIDC token there before opencode runs, or fix subjectTokenSource.path.`,
        {
          providerId,
        },
      );
    }
    const token = content.trim();
    if (!token) throw new SubjectTokenUnavailableError(SOURCE, `the token file ${this.path} is empty.`, { providerId });
    return token;
  }
}

export const file = defineSource({
  type: SOURCE,
  schema: z.strictObject({ type: z.literal(SOURCE), path: text("path"), audience }),
  create: (config) => new FileSource(config.path, config.audience),
  credentialEnv: [],
});
