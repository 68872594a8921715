/**
 * Transport rules shared by every outgoing request: https only, except to loopback (local tests and demos).
 * A token must never travel in clear text across a network.
 */

const LOOPBACK_HOSTS = new Set(["localhost", "[::1]", "::1"]);

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
