/** The providers this plugin manages in this process: a TokenProvider, or the config error that stops it. */
import type { ConfigError } from "../errors.js";
import type { TokenProvider } from "../token-provider.js";

export type ManagedProvider =
  | { providerId: string; tokenProvider: TokenProvider; error?: undefined }
  | { providerId: string; tokenProvider?: undefined; error: ConfigError };

export class ProviderRegistry {
  readonly #providers = new Map<string, ManagedProvider>();

  set(entry: ManagedProvider): void {
    this.#providers.set(entry.providerId, entry);
  }

  get(providerId: string): ManagedProvider | undefined {
    return this.#providers.get(providerId);
  }
}
