/**
 * What the plugin knows of the two clouds whose token services it speaks to without a client of their own:
 * Microsoft Entra's login hosts and tenants, and Google's workload identity federation. The schema uses it to
 * apply their defaults and to refuse, with the fix, a block those services would refuse.
 */

/** Entra's login hosts: the public cloud and the national clouds. */
export const ENTRA_LOGIN_HOSTS: ReadonlySet<string> = new Set([
  "login.microsoftonline.com",
  "login.microsoftonline.us",
  "login.partner.microsoftonline.cn",
]);

/** Tenants that name no tenant: client credentials are refused there (AADSTS50059). */
export const ENTRA_MULTI_TENANTS: ReadonlySet<string> = new Set(["common", "organizations", "consumers"]);

/** The tenant segment of an Entra authority or token endpoint URL, or undefined when it is not Entra's. */
export function entraTenantOf(url: string | undefined): string | undefined {
  if (!url || !URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  if (!ENTRA_LOGIN_HOSTS.has(parsed.hostname.toLowerCase())) return undefined;
  return parsed.pathname.split("/").filter((p) => p.length > 0)[0];
}

/**
 * A Google workload identity pool provider's full resource name, as STS takes it in `audience`:
 * `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
 */
export const GOOGLE_PROVIDER_AUDIENCE =
  /^\/\/iam\.googleapis\.com\/projects\/(\d+)\/locations\/global\/workloadIdentityPools\/([^/]+)\/providers\/([^/]+)$/;

/** The Google workload identity provider named in `tokenExchangeAudience`, if any. */
export function googleProviderOf(audiences: readonly string[] | undefined): string | undefined {
  return audiences?.find((a) => a.startsWith("//iam.googleapis.com/"));
}

/**
 * The audience a Google provider accepts by default (when its allowed audiences are not set): its resource name
 * with `https:` in front. Also what google-github-actions/auth requests.
 * @see https://cloud.google.com/iam/docs/reference/rest/v1/projects.locations.workloadIdentityPools.providers#oidc
 */
export function googleDefaultTokenAudience(providerAudience: string): string {
  return `https:${providerAudience}`;
}

/**
 * The IAM principal of a job's token in the pool, with the usual mapping `google.subject=assertion.sub`: what must
 * hold roles/iam.workloadIdentityUser on a service account, or roles on a resource.
 * @see https://cloud.google.com/iam/docs/principal-identifiers
 */
export function googlePrincipalOf(providerAudience: string, subject: string): string | undefined {
  const m = GOOGLE_PROVIDER_AUDIENCE.exec(providerAudience);
  return m
    ? `principal://iam.googleapis.com/projects/${m[1]}/locations/global/workloadIdentityPools/${m[2]}/subject/${subject}`
    : undefined;
}
