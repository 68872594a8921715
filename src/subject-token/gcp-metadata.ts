/**
 * Google Cloud: the metadata server mints an identity token for the service account attached to the VM (or the
 * Cloud Run service, or the GKE workload): `GET <base>/computeMetadata/v1/instance/service-accounts/default/identity
 * ?audience=…&format=full` with `Metadata-Flavor: Google`, the JWT as the whole body. The base is plain http on
 * purpose (transport.ts: METADATA_SERVER_HOSTS). `GCE_METADATA_IP`, else `GCE_METADATA_HOST`, overrides the default
 * host, as Google's Node.js client reads them (googleapis/gcp-metadata, src/index.ts `getBaseUrl`: the IP wins, and
 * a value without a scheme is http). Google's Python client uses `GCE_METADATA_IP` only to ping; the Node one is the
 * reference here.
 * @see https://cloud.google.com/compute/docs/instances/verifying-instance-identity#request_signature
 */
import { SubjectTokenRequestError, SubjectTokenUnavailableError } from "../errors.js";
import { insecureMetadataReason } from "../http/transport.js";
import { requestTokenOverHttp } from "./http-token-request.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { DEFAULT_METADATA_BASE_URL } from "../config/defaults.js";
import { text, tokenUrl } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "gcp_metadata";
const IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity";
/** The variables that override the metadata server's host, in order of precedence. */
const HOST_VARIABLES = ["GCE_METADATA_IP", "GCE_METADATA_HOST"] as const;

/** The metadata server named by the environment, and the variable that named it; undefined when none is set. */
function metadataServerFromEnv(env: NodeJS.ProcessEnv): { variable: string; base: string } | undefined {
  for (const variable of HOST_VARIABLES) {
    const value = env[variable]?.trim();
    if (value) return { variable, base: /^https?:\/\//i.test(value) ? value : `http://${value}` };
  }
  return undefined;
}

export class GcpMetadataSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string;
  /** None in the environment: this source reads a file, a server or a program. */
  readonly credentialEnv: readonly string[] = [];
  readonly #baseUrl: string | undefined;
  readonly #defaultBaseUrl: string;

  /** `baseUrl` is the configured one, if any; `defaultBaseUrl` applies when neither it nor the environment names one. */
  constructor(audience: string, baseUrl: string | undefined, defaultBaseUrl: string) {
    this.expectedAudience = audience;
    this.#baseUrl = baseUrl;
    this.#defaultBaseUrl = defaultBaseUrl;
  }

  /**
   * None: the metadata server speaks for the machine's service account, and nothing in it tells one CI job on
   * that machine from the next, so the file cache is not used with this source.
   */
  async cacheIdentity(): Promise<string | undefined> {
    return undefined;
  }

  /** The identity endpoint's URL: the configured base, else `GCE_METADATA_IP`, else `GCE_METADATA_HOST`, else the default. */
  identityUrl(env: NodeJS.ProcessEnv): URL {
    const base = new URL(this.#baseUrl ?? metadataServerFromEnv(env)?.base ?? this.#defaultBaseUrl);
    const url = new URL(`${base.pathname.replace(/\/+$/, "")}${IDENTITY_PATH}`, base);
    url.searchParams.set("audience", this.expectedAudience);
    url.searchParams.set("format", "full");
    return url;
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    let url: URL;
    try {
      url = this.identityUrl(env);
    } catch {
      // metadataBaseUrl is a valid URL (the schema checks it): only a variable can be wrong here.
      const variable = metadataServerFromEnv(env)?.variable ?? "GCE_METADATA_HOST";
      throw new SubjectTokenUnavailableError(SOURCE, `${variable} is not a valid host name or URL.`, { providerId });
    }
    const insecure = insecureMetadataReason(url);
    if (insecure) throw new SubjectTokenUnavailableError(SOURCE, `the metadata server URL: ${insecure}.`, { providerId });
    const notOnGoogleCloud = `${url.hostname} does not resolve: this does not run on Google Cloud. Use the source of the platform the job runs on, or set metadataBaseUrl.`;
    const answer = await requestTokenOverHttp(context, {
      source: SOURCE,
      service: "the metadata server",
      url,
      headers: { "metadata-flavor": "Google" },
      redirectReason: "only the metadata server may answer",
      refusalHints: {
        404: "This machine has no service account attached: attach one to the VM (or the Cloud Run service, or the GKE workload's Kubernetes service account).",
      },
      permanentNetworkErrors: { ENOTFOUND: notOnGoogleCloud },
    });
    // Google's own libraries check this too: anything else is a proxy or a captive portal, not the metadata server.
    if (answer.headers.get("metadata-flavor") !== "Google") {
      throw new SubjectTokenRequestError(
        SOURCE,
        `the answer from ${url.origin} lacks the \`Metadata-Flavor: Google\` header, so it is not from the metadata server.`,
        {
          providerId,
          status: answer.status,
        },
      );
    }
    const token = answer.body.trim();
    if (!token)
      throw new SubjectTokenRequestError(SOURCE, "the metadata server answered an empty body.", { providerId, status: answer.status });
    return token;
  }
}

const isSet = (value: string | undefined) => value !== undefined && value.trim() !== "";

export const gcpMetadata = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /** The `aud` to request; the metadata server requires one. */
    audience: text("audience"),
    /** The metadata server; https, loopback (tests) or the metadata server itself over http. */
    metadataBaseUrl: z.optional(tokenUrl("metadataBaseUrl", insecureMetadataReason)),
  }),
  create: (config) => new GcpMetadataSource(config.audience, config.metadataBaseUrl, DEFAULT_METADATA_BASE_URL),
  platform: {
    name: "Google Cloud",
    // Not K_SERVICE alone: every Knative platform sets it (knative/serving docs/runtime-contract.md), and no variable
    // tells a Cloud Run service from Knative; Google's own client probes the metadata server to know, which `auto`
    // never does. CLOUD_RUN_JOB is Cloud Run jobs' own. On a Cloud Run service or a plain VM, set the type.
    signal: "GCE_METADATA_IP, GCE_METADATA_HOST or CLOUD_RUN_JOB",
    matches: (env) => isSet(env.GCE_METADATA_IP) || isSet(env.GCE_METADATA_HOST) || isSet(env.CLOUD_RUN_JOB),
    details: { service: "K_SERVICE", job: "CLOUD_RUN_JOB", metadata: "GCE_METADATA_HOST" },
    fromAuto: (settings, unusable) =>
      settings.audience
        ? new GcpMetadataSource(settings.audience, undefined, DEFAULT_METADATA_BASE_URL)
        : unusable("whose metadata server needs an audience: set subjectTokenSource.audience to the one your IdP expects."),
  },
  // Only Compute Engine VMs' tokens (format=full) carry `google.compute_engine`; Cloud Run's and GKE's do not.
  nestedSummaryClaims: { "google/project_id": ["google", "compute_engine", "project_id"] },
  credentialEnv: [],
});
