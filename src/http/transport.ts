/**
 * Transport rules shared by every outgoing request: https only, except to loopback (local tests and demos).
 * A token must never travel in clear text across a network.
 */

const LOOPBACK_HOSTS = new Set(["localhost", "[::1]", "::1"]);

/**
 * The Google Cloud metadata server, by name and by its link-local address. It only serves plain http, and its
 * traffic never leaves the VM's host (link-local, answered by the hypervisor), so http to it is no network hop.
 * @see https://cloud.google.com/compute/docs/metadata/querying-metadata
 */
export const METADATA_SERVER_HOSTS: ReadonlySet<string> = new Set(["metadata.google.internal", "169.254.169.254"]);

export function isLoopback(url: URL): boolean {
  const host = url.hostname;
  return LOOPBACK_HOSTS.has(host) || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/** Returns a reason when `url` may not carry a token, or undefined when it may. */
export function insecureReason(url: URL): string | undefined {
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && isLoopback(url)) return undefined;
  return `${url.protocol}//${url.host} is not https (plain http is only allowed to loopback addresses, for local tests)`;
}

/** insecureReason, plus plain http to the metadata server itself (and nowhere else): for the gcp_metadata source only. */
export function insecureMetadataReason(url: URL): string | undefined {
  if (url.protocol === "http:" && METADATA_SERVER_HOSTS.has(url.hostname.toLowerCase())) return undefined;
  const reason = insecureReason(url);
  return (
    reason &&
    `${url.protocol}//${url.host} is not https (plain http is only allowed to the metadata server, ${[...METADATA_SERVER_HOSTS].join(" or ")}, and to loopback addresses)`
  );
}
