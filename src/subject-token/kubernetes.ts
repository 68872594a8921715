/**
 * Kubernetes: a projected service-account token, re-read for every grant because kubelet rotates it. kubelet
 * writes the volume as `<name> -> ..data/<name>`, `..data -> ..<timestamp>/`, and rotates by renaming a new
 * `..data` over the old one; reading the path through its symlinks therefore always sees one whole token.
 * @see https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#launch-a-pod-using-service-account-token-projection
 */
import { readFile } from "node:fs/promises";
import { decodeJwt } from "jose";
import { SubjectTokenUnavailableError } from "../errors.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { DEFAULT_KUBERNETES_TOKEN_PATH } from "../config/defaults.js";
import { audience, text } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "kubernetes";
/** Every pod's default token: its audience is the cluster's API server, so it is never sent to an IdP by default. */
export const DEFAULT_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** The pod a token is bound to, from its `kubernetes.io` claim (not secret; the signature is not checked here). */
function podUidOf(token: string): { iss?: string; sub?: string; podUid?: string } {
  try {
    const payload = decodeJwt(token);
    const k8s = payload["kubernetes.io"] as { pod?: { uid?: unknown } } | undefined;
    const podUid = k8s?.pod?.uid;
    return {
      ...(typeof payload.iss === "string" ? { iss: payload.iss } : {}),
      ...(typeof payload.sub === "string" ? { sub: payload.sub } : {}),
      ...(typeof podUid === "string" ? { podUid } : {}),
    };
  } catch {
    return {};
  }
}

export class KubernetesSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** None in the environment: this source reads a file, a server or a program. */
  readonly credentialEnv: readonly string[] = [];
  readonly path: string;

  constructor(path: string, audience: string | undefined) {
    this.path = path;
    this.expectedAudience = audience;
  }

  /**
   * The file, the token's issuer and subject, and the pod it is bound to: stable across kubelet's rotations, and
   * different for every pod (a CI job runs in its own pod). Without a pod binding, a fingerprint of the token.
   */
  async cacheIdentity(context: SubjectTokenContext): Promise<string | undefined> {
    const token = await this.getSubjectToken(context).catch(() => undefined);
    if (!token) return undefined;
    const { iss, sub, podUid } = podUidOf(token);
    return identityOf([SOURCE, this.path, this.expectedAudience ?? "(none)", iss, sub, podUid ?? fingerprint(token)]);
  }

  async getSubjectToken({ providerId, env }: SubjectTokenContext): Promise<string> {
    let content: string;
    try {
      // A read that resolves `..data` just as kubelet deletes the previous directory can miss it: read once more.
      content = await readFile(this.path, "utf8").catch((err: NodeJS.ErrnoException) =>
        err.code === "ENOENT" ? readFile(this.path, "utf8") : Promise.reject(err),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new SubjectTokenUnavailableError(SOURCE, this.#whyUnreadable(code, env), { providerId, cause: err });
    }
    const token = content.trim();
    if (!token) throw new SubjectTokenUnavailableError(SOURCE, `the token file ${this.path} is empty.`, { providerId });
    return token;
  }

  #whyUnreadable(code: string | undefined, env: NodeJS.ProcessEnv): string {
    const path = this.path;
    const where = env.KUBERNETES_SERVICE_HOST ? "" : " (this does not look like a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set)";
    switch (code) {
      case "ENOENT":
      case "ENOTDIR":
        return (
          `the projected service-account token ${path} does not exist${where}. Mount one: a \`projected\` volume with a \`serviceAccountToken\` source ` +
          `(\`audience\`: your IdP's, \`path\`: the file name) mounted at its directory (docs/configuration.md#kubernetes), or set subjectTokenSource.path. ` +
          `The pod's default token (${DEFAULT_SERVICE_ACCOUNT_TOKEN}) is not used: its audience is the cluster's API server.`
        );
      case "EACCES":
        return `the token file ${path} is not readable by this user. Give the pod a \`securityContext.fsGroup\` (or run as the file's owner) so the container user can read the projected volume.`;
      case "EISDIR":
        return `${path} is a directory: set subjectTokenSource.path to the token file inside it (the projection's \`path\`).`;
      default:
        return `the token file ${path} cannot be read (${code ?? "unknown error"}).`;
    }
  }
}

export const kubernetes = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    path: z._default(text("path"), DEFAULT_KUBERNETES_TOKEN_PATH),
    /** When set, the token's `aud` is checked locally: set it to the projection's `audience`. */
    audience,
  }),
  create: (config) => new KubernetesSource(config.path, config.audience),
  platform: {
    name: "Kubernetes",
    signal: "KUBERNETES_SERVICE_HOST",
    matches: (env) => (env.KUBERNETES_SERVICE_HOST ?? "").trim() !== "",
    details: { pod: "HOSTNAME" },
    fromAuto: (settings) => new KubernetesSource(settings.path, settings.audience),
    // A `file` source pointed at the projected token is as good.
    alsoFits: ["file"],
  },
  nestedSummaryClaims: {
    "kubernetes.io/namespace": ["kubernetes.io", "namespace"],
    "kubernetes.io/serviceaccount": ["kubernetes.io", "serviceaccount", "name"],
  },
  credentialEnv: [],
});
