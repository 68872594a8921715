/**
 * A per-IdP in-memory storage adapter for oidc-provider.
 *
 * Supplying our own adapter keeps each test IdP's tokens isolated (the built-in
 * memory adapter is process-global) and avoids its "development-only adapter" warning.
 */
import type { OidcAdapter } from "./oidc-provider-types.js";

interface Entry {
  payload: Record<string, unknown>;
  /** Epoch milliseconds; Infinity when stored without expiry. */
  expiresAt: number;
}

/** Shared storage for all models of one provider. */
export class MemoryStore {
  readonly #entries = new Map<string, Entry>();

  get(key: string): Record<string, unknown> | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: Record<string, unknown>, expiresIn?: number): void {
    const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : Infinity;
    this.#entries.set(key, { payload, expiresAt });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  *values(): IterableIterator<[string, Record<string, unknown>]> {
    for (const key of [...this.#entries.keys()]) {
      const payload = this.get(key);
      if (payload) yield [key, payload];
    }
  }
}

/** Returns oidc-provider's `adapter` option: a factory building one adapter per model name. */
export function createMemoryAdapter(store: MemoryStore = new MemoryStore()): (model: string) => OidcAdapter {
  return (model: string): OidcAdapter => {
    const key = (id: string): string => `${model}:${id}`;
    const findBy = (field: string, value: string): Record<string, unknown> | undefined => {
      for (const [k, payload] of store.values()) {
        if (k.startsWith(`${model}:`) && payload[field] === value) return payload;
      }
      return undefined;
    };
    return {
      async upsert(id, payload, expiresIn) {
        store.set(key(id), payload, expiresIn);
      },
      async find(id) {
        return store.get(key(id));
      },
      async findByUid(uid) {
        return findBy("uid", uid);
      },
      async findByUserCode(userCode) {
        return findBy("userCode", userCode);
      },
      async consume(id) {
        const payload = store.get(key(id));
        if (payload) payload["consumed"] = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const [k, payload] of store.values()) {
          if (payload["grantId"] === grantId) store.delete(k);
        }
      },
    };
  };
}
