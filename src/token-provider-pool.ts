/**
 * One token provider per identity per process. opencode creates a plugin instance per directory instance (one
 * `opencode run` whose PWD differs from its working directory makes two; `opencode serve` one per project), and each
 * instance runs the config hook. Without sharing, each would run its own grants, and "one grant per token lifetime"
 * would hold per instance instead of per process.
 *
 * The identity is the provider id and its validated block, within one scope: the environment, fetch and clock the
 * provider works with. The plugin passes process.env and the global fetch, so all its instances share; a test that
 * injects its own environment or fetch gets its own providers.
 */
import { canonicalJson } from "./canonical-json.js";
import type { OAuth2Config } from "./config/schema.js";
import { TokenProvider, type TokenProviderOptions } from "./token-provider.js";

type Scope = Map<string, TokenProvider>;

/** Scopes by object identity, through nested WeakMaps: env → fetch → now. A missing part uses a sentinel. */
const scopes = new WeakMap<object, WeakMap<object, WeakMap<object, Scope>>>();
const DEFAULT = {};

function scopeOf(options: TokenProviderOptions): Scope {
  const env = options.env ?? process.env;
  const fetch = options.fetch ?? DEFAULT;
  const now = options.now ?? DEFAULT;
  let byFetch = scopes.get(env);
  if (!byFetch) scopes.set(env, (byFetch = new WeakMap()));
  let byNow = byFetch.get(fetch);
  if (!byNow) byFetch.set(fetch, (byNow = new WeakMap()));
  let scope = byNow.get(now);
  if (!scope) byNow.set(now, (scope = new Map()));
  return scope;
}

/**
 * The token provider for this identity: the one another plugin instance of this process already made, with this
 * caller's witness added, or a new one. The first caller's logger and retry settings are kept.
 */
export function sharedTokenProvider(providerId: string, config: OAuth2Config, options: TokenProviderOptions): TokenProvider {
  const scope = scopeOf(options);
  const key = canonicalJson({ providerId, config });
  const existing = scope.get(key);
  if (existing) {
    if (options.witness) existing.addWitness(options.witness);
    return existing;
  }
  const created = new TokenProvider(providerId, config, options);
  scope.set(key, created);
  return created;
}
