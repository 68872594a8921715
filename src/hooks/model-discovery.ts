/**
 * Lists a provider's models from its OpenAI-compatible `GET <baseURL>/models`, with the access token, so a config
 * that names no models still works. A failure is logged and the run goes on: opencode's own error stays readable.
 */
import type { Logger } from "../log.js";
import { scrub } from "../log.js";
import { describeCause } from "../errors.js";

export const MODEL_DISCOVERY_TIMEOUT_MS = 15_000;

/** Model ids from an OpenAI-style `{ data: [{ id }] }` list (or a bare array of such objects). */
export function parseModelList(body: unknown): string[] {
  const list = Array.isArray(body) ? body : (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(list)) return [];
  const ids = list.map((m) => (m as { id?: unknown } | null)?.id).filter((id): id is string => typeof id === "string" && id.length > 0);
  return [...new Set(ids)];
}

export async function discoverModels(providerId: string, baseURL: string, authorizedFetch: typeof globalThis.fetch, logger: Logger): Promise<string[]> {
  const url = `${baseURL.replace(/\/+$/, "")}/models`;
  const log = logger.child({ provider: providerId });
  try {
    const response = await authorizedFetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(MODEL_DISCOVERY_TIMEOUT_MS) });
    if (!response.ok) {
      const body = scrub((await response.text()).slice(0, 200));
      log.error({ event: "model_discovery_failed", status: response.status, url }, `model discovery: GET ${url} answered HTTP ${response.status}: ${body}. List the models in provider.${providerId}.models to skip discovery.`);
      return [];
    }
    const ids = parseModelList(await response.json());
    if (ids.length === 0) log.error({ event: "model_discovery_empty", url }, `model discovery: GET ${url} listed no models. List them in provider.${providerId}.models.`);
    else log.info({ event: "models_discovered", count: ids.length }, `discovered ${ids.length} model(s)`);
    return ids;
  } catch (err) {
    log.error({ event: "model_discovery_failed", url, code: (err as { code?: string }).code }, `model discovery: GET ${url} did not succeed: ${(err as Error).message ?? describeCause(err)}`);
    return [];
  }
}
