/**
 * Azure Pipelines: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1[&serviceConnectionId=<id>]` with the job access token
 * (`SYSTEM_ACCESSTOKEN`) answers a token in the `oidcToken` field. With a service connection id, it is that service
 * connection's token (workload identity federation); without, the pipeline's own token, whose claims name the
 * organization, project, pipeline definition, repository and ref. Microsoft documents both forms of the endpoint, not
 * the pipeline token's claims (docs/configuration.md#azure_pipelines says which are observed).
 * @see https://learn.microsoft.com/rest/api/azure/devops/distributedtask/oidctoken/create
 * @see https://learn.microsoft.com/azure/devops/pipelines/release/convert-service-connections (the two issuers)
 * @see https://learn.microsoft.com/azure/devops/pipelines/build/variables#systemaccesstoken
 */
import { SubjectTokenUnavailableError } from "../errors.js";
import { insecureReason } from "../http/transport.js";
import { requestTokenOverHttp } from "./http-token-request.js";
import { tokenFromJson } from "./json-token-field.js";
import { fingerprint, identityOf, type SubjectTokenContext, type SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience, text } from "../config/fields.js";
import { defineSource } from "./definition.js";

const SOURCE = "azure_pipelines";
const CREDENTIAL_ENV = ["SYSTEM_ACCESSTOKEN", "SYSTEM_OIDCREQUESTURI"] as const;
export const AZURE_OIDC_API_VERSION = "7.1";
const MAP_ACCESS_TOKEN =
  "Azure Pipelines does not put the job access token in the environment by default: map it in the step that runs opencode, `env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }`.";

export class AzurePipelinesSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  readonly credentialEnv = CREDENTIAL_ENV;
  /** Undefined: the pipeline's own token. */
  readonly serviceConnectionId: string | undefined;

  constructor(serviceConnectionId: string | undefined, audience: string | undefined) {
    this.serviceConnectionId = serviceConnectionId;
    this.expectedAudience = audience;
  }

  /**
   * The service connection (or the pipeline's own token), the job's OIDC request URI (it holds the plan and job ids)
   * and a fingerprint of the job access token, which only this job holds.
   */
  async cacheIdentity({ env }: SubjectTokenContext): Promise<string | undefined> {
    const accessToken = env.SYSTEM_ACCESSTOKEN;
    return identityOf([
      SOURCE,
      this.serviceConnectionId ?? "(pipeline)",
      env.SYSTEM_OIDCREQUESTURI,
      accessToken ? fingerprint(accessToken) : undefined,
    ]);
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId, env } = context;
    const requestUri = env.SYSTEM_OIDCREQUESTURI;
    if (!requestUri) {
      const why = /^true$/i.test(env.TF_BUILD ?? "")
        ? "this agent does not offer OIDC tokens (Azure DevOps Server, or an agent too old for workload identity federation)"
        : "this does not look like an Azure Pipelines job (TF_BUILD is not set)";
      throw new SubjectTokenUnavailableError(SOURCE, `SYSTEM_OIDCREQUESTURI is not set: ${why}.`, { providerId });
    }
    const accessToken = env.SYSTEM_ACCESSTOKEN;
    if (!accessToken) throw new SubjectTokenUnavailableError(SOURCE, `SYSTEM_ACCESSTOKEN is not set. ${MAP_ACCESS_TOKEN}`, { providerId });
    let url: URL;
    try {
      url = new URL(requestUri);
    } catch {
      throw new SubjectTokenUnavailableError(SOURCE, "SYSTEM_OIDCREQUESTURI is not a valid URL.", { providerId });
    }
    const insecure = insecureReason(url);
    if (insecure) throw new SubjectTokenUnavailableError(SOURCE, `SYSTEM_OIDCREQUESTURI: ${insecure}.`, { providerId });
    // Added to whatever query the URI already has, never replacing it.
    url.searchParams.set("api-version", AZURE_OIDC_API_VERSION);
    if (this.serviceConnectionId !== undefined) url.searchParams.set("serviceConnectionId", this.serviceConnectionId);

    const answer = await requestTokenOverHttp(context, {
      source: SOURCE,
      service: "the Azure Pipelines OIDC service",
      url,
      method: "POST",
      headers: {
        authorization: `Bearer ${accessToken}`,
        accept: "application/json",
        "content-type": "application/json",
        // Asks Azure DevOps for a 401 instead of a redirect to its sign-in page.
        "x-tfs-fedauthredirect": "Suppress",
      },
      redirectReason: "SYSTEM_ACCESSTOKEN is only sent to SYSTEM_OIDCREQUESTURI",
      refusalHints: {
        401: `The job access token was refused: map the current one, \`env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }\`, and do not set SYSTEM_ACCESSTOKEN yourself.`,
        default:
          this.serviceConnectionId === undefined
            ? "The pipeline's own token was refused: run on Azure DevOps Services with a current agent, or set subjectTokenSource.serviceConnectionId to use a service connection's token."
            : `Check subjectTokenSource.serviceConnectionId ("${this.serviceConnectionId}"): it must be the id of a service connection that uses workload identity federation (Azure Resource Manager, Docker registry, or one an extension created), and this pipeline must be allowed to use it.`,
      },
    });
    return tokenFromJson(answer, { source: SOURCE, providerId, service: "the Azure Pipelines OIDC service", url, field: "oidcToken" });
  }
}

const isSet = (value: string | undefined) => value !== undefined && value.trim() !== "";

export const azurePipelines = defineSource({
  type: SOURCE,
  schema: z.strictObject({
    type: z.literal(SOURCE),
    /**
     * The id (a GUID) of a service connection that uses workload identity federation: the token is then that service
     * connection's. Omitted: the pipeline's own token. Empty is an error here, as for any text field (an unset
     * `{env:VAR}` must not silently switch identities); `auto` alone treats it as not set.
     */
    serviceConnectionId: z.optional(text("serviceConnectionId")),
    /** When set, the token's `aud` is checked locally (Azure issues `api://AzureADTokenExchange`). */
    audience,
  }),
  create: (config) => new AzurePipelinesSource(config.serviceConnectionId, config.audience),
  platform: {
    name: "Azure Pipelines",
    signal: "TF_BUILD=True or SYSTEM_OIDCREQUESTURI",
    matches: (env) => /^true$/i.test(env.TF_BUILD ?? "") || isSet(env.SYSTEM_OIDCREQUESTURI),
    details: { project: "SYSTEM_TEAMPROJECT", repository: "BUILD_REPOSITORY_NAME", branch: "BUILD_SOURCEBRANCH", build: "BUILD_BUILDID" },
    fromAuto: (settings) => new AzurePipelinesSource(settings.serviceConnectionId, settings.audience),
  },
  // The pipeline token's claims, as observed in real tokens (Microsoft does not document them).
  summaryClaims: ["org_id", "prj_id", "def_id", "rpo_uri", "rpo_ref"],
  credentialEnv: CREDENTIAL_ENV,
});
