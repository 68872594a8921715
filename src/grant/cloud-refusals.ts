/**
 * Hints for the refusals of Microsoft Entra and Google STS, which answer with codes and wording of their own. Each
 * hint says what to register or grant, and names what the job presented (issuer, subject, audience: claims, never
 * the token). The IdP's `error` and `error_description` stay in the message; these only add the fix.
 *
 * Entra: codes from the `AADSTSnnnn` prefix of `error_description`. Microsoft documents the error shape and warns that
 * wording changes; the codes are stable. Wording of the federated-credential codes is from responses quoted in public
 * issues (docs/troubleshooting.md cites them).
 * @see https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 * @see https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations
 * Google STS documents no error strings; these are the ones its users report (docs/troubleshooting.md).
 * @see https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token
 */

type Presented = Record<string, unknown> | undefined;

const claim = (presented: Presented, name: string): string => {
  const value = presented?.[name];
  if (Array.isArray(value)) return value.map(String).join(", ");
  return value === undefined ? "?" : String(value);
};

/** The federated identity the job presented, as a credential must name it. */
const identity = (p: Presented) => `issuer "${claim(p, "iss")}", subject "${claim(p, "sub")}" and audience "${claim(p, "aud")}"`;

function entraHint(code: number, clientId: string | undefined, p: Presented): string | undefined {
  switch (code) {
    case 70021:
    case 700211:
    case 700213:
      return `Entra has no federated identity credential for what this job presented: add one to the app registration ${clientId ? `"${clientId}" ` : ""}with ${identity(p)}, exactly (no wildcards). One added moments ago can take a few minutes to apply.`;
    case 7002138:
      return `The app's federated credential differs from the job's subject only in letter case, and Entra compares case-sensitively: register subject "${claim(p, "sub")}" exactly.`;
    case 700212:
      return `The federated credential's audience differs from the token's "${claim(p, "aud")}": make them equal (Entra's default is api://AzureADTokenExchange; subjectTokenSource.audience sets the token's).`;
    case 700024:
      return "The job's token was outside its valid time range when Entra checked it: check the runner's clock, and that the source gives a token that is still valid (gitlab, env and file sources present the one the job holds).";
    case 7000272:
    case 700027:
      return `Entra could not verify the token with the keys published by its issuer "${claim(p, "iss")}": the credential's issuer must be the CI platform's OIDC issuer, exactly.`;
    case 700016:
      return `No application with client id "${clientId ?? "?"}" in this tenant: check clientId, and the tenant in issuer or tokenEndpoint.`;
    case 90002:
    case 900023:
      return "The tenant in issuer or tokenEndpoint does not exist: use the Directory (tenant) ID shown on the app registration's overview.";
    case 50059:
      return "Client credentials need a tenant-specific URL: put your tenant id in issuer or tokenEndpoint, not common or organizations.";
    case 500011:
      return "The resource named in scopes is not in this tenant: for Azure OpenAI, the scope is https://cognitiveservices.azure.com/.default.";
    case 70011:
    case 1002012:
      return 'Client credentials take one scope "<resource>/.default", e.g. https://cognitiveservices.azure.com/.default.';
    default:
      return undefined;
  }
}

function googleHint(error: string, description: string, p: Presented): string | undefined {
  if (/audience in ID Token/i.test(description)) {
    return `The pool provider does not accept the token's audience "${claim(p, "aud")}": request the job's token with one it allows (by default https://iam.googleapis.com/ followed by the provider's name without "//iam.googleapis.com/"; subjectTokenSource.audience), or add this one to the provider's allowed audiences.`;
  }
  if (/attribute condition/i.test(description)) {
    const shown = ["repository", "ref", "sub"].map((n) => `${n} ${claim(p, n)}`).join(", ");
    return `The provider's attribute condition refused this job (${shown}): change the condition, or run the job where it allows.`;
  }
  if (/issuer in ID Token/i.test(description))
    return `The provider's issuer must be the CI platform's OIDC issuer "${claim(p, "iss")}", exactly.`;
  if (/stale to sign-in/i.test(description))
    return "Google saw the job's token as too old or not yet valid: check the runner's clock, and that the source gives a token that is still valid.";
  if (error === "invalid_target")
    return "The pool or provider in tokenExchangeAudience does not exist, or is disabled or deleted: check its project number, pool id and provider id.";
  if (/Invalid value for "audience"/i.test(description)) {
    return "tokenExchangeAudience must be the provider's full name: //iam.googleapis.com/projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>.";
  }
  return undefined;
}

/** A hint for a refusal by Entra or Google STS, or undefined for any other IdP's. */
export function cloudRefusalHint(
  error: string,
  description: string | undefined,
  clientId: string | undefined,
  presented: Presented,
): string | undefined {
  const text = description ?? "";
  const aadsts = /^AADSTS(\d+)\b/.exec(text.trim());
  if (aadsts) return entraHint(Number(aadsts[1]), clientId, presented);
  return googleHint(error, text, presented);
}
