/**
 * Lists a provider's models from its OpenAI-compatible `GET <baseURL>/models`, with the access token, so a config
 * that names no models still works. A failure is logged and the run goes on: opencode's own error stays readable.
 */
import type { Logger } from "../log.js";
import { describeCause } from "../describe-failure.js";
import { formatBytes, readBodyLimited } from "../http/body.js";
import { quote } from "../scrub.js";
import { OPENCODE_ERROR_NAME } from "./opencode-error.js";

export const MODEL_DISCOVERY_TIMEOUT_MS = 15_000;
/**
 * Model lists are larger than token answers (a catalogue of hundreds of models is a few hundred KB); a longer
 * answer is cut and discovery is given up, rather than held in memory whole.
 */
export const MAX_MODEL_LIST_BYTES = 4 * 1024 * 1024;

/** Model ids from an OpenAI-style `{ data: [{ id }] }` list (or a bare array of such objects). */
export function parseModelList(body: unknown): string[] {
  const list = Array.isArray(body) ? body : (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(list)) return [];
  const ids = list.map((m) => (m as { id?: unknown } | null)?.id).filter((id): id is string => typeof id === "string" && id.length > 0);
  return [...new Set(ids)];
}

export async function discoverModels(
  providerId: string,
  baseURL: string,
  authorizedFetch: typeof globalThis.fetch,
  logger: Logger,
): Promise<string[]> {
  const url = `${baseURL.replace(/\/+$/, "")}/models`;
  const log = logger.child({ provider: providerId });
  try {
    const response = await authorizedFetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(MODEL_DISCOVERY_TIMEOUT_MS),
    });
    if (!response.ok) {
      const body = quote((await readBodyLimited(response)).text, 200);
      log.error(
        { event: "model_discovery_failed", status: response.status, url },
        `model discovery: GET ${url} answered HTTP ${response.status}: ${body}. List the models in provider.${providerId}.models to skip discovery.`,
      );
      return [];
    }
    const list = await readBodyLimited(response, MAX_MODEL_LIST_BYTES);
    if (list.truncated) {
      log.error(
        { event: "model_discovery_failed", url },
        `model discovery: GET ${url} answered more than ${formatBytes(MAX_MODEL_LIST_BYTES)}; the rest was not read. List the models in provider.${providerId}.models to skip discovery.`,
      );
      return [];
    }
    const ids = parseModelList(JSON.parse(list.text));
    if (ids.length === 0)
      log.error(
        { event: "model_discovery_empty", url },
        `model discovery: GET ${url} listed no models. List them in provider.${providerId}.models.`,
      );
    else log.info({ event: "models_discovered", count: ids.length }, `discovered ${ids.length} model(s)`);
    return ids;
  } catch (err) {
    // The plugin's own failures (no token, a refused token) were already logged with their cause; don't repeat them.
    const why = (err as Error).name === OPENCODE_ERROR_NAME ? "see the plugin's error above" : describeCause(err);
    log.error({ event: "model_discovery_failed", url }, `model discovery: GET ${url} did not succeed: ${why}`);
    return [];
  }
}

/**
 * Model ids the user named for this provider: `--model`/`-m` on the command line, and `model` / `small_model`
 * in the config. When discovery cannot run (no token, provider down), these are registered anyway so opencode
 * reaches the plugin's hooks and the user sees the real cause instead of "model not found".
 */
export function requestedModelIds(
  providerId: string,
  config: { model?: unknown; small_model?: unknown },
  argv: readonly string[] = process.argv,
): string[] {
  const named: unknown[] = [config.model, config.small_model];
  argv.forEach((arg, i) => {
    if (arg === "--model" || arg === "-m") named.push(argv[i + 1]);
    else if (arg.startsWith("--model=")) named.push(arg.slice("--model=".length));
  });
  const prefix = `${providerId}/`;
  const ids = named
    .filter((v): v is string => typeof v === "string" && v.startsWith(prefix) && v.length > prefix.length)
    .map((v) => v.slice(prefix.length));
  return [...new Set(ids)];
}
