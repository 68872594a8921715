/**
 * `chat.headers`: opencode calls it before every LLM request of every provider. For a managed provider it sets
 * `Authorization`; a provider whose config is invalid fails here, before anything is sent.
 * The cached path is synchronous up to the header assignment (well under 1 µs, see docs/performance.md).
 */
import type { ProviderRegistry } from "./registry.js";
import { toOpencodeError } from "./opencode-error.js";

interface ChatHeadersInput {
  model: { providerID: string };
}
interface ChatHeadersOutput {
  headers: Record<string, string>;
}

export function createChatHeadersHook(registry: ProviderRegistry) {
  return async (input: ChatHeadersInput, output: ChatHeadersOutput): Promise<void> => {
    // input.provider.info does not exist at runtime despite the type: the model's providerID is reliable.
    const providerId = input.model.providerID;
    const managed = registry.get(providerId);
    if (!managed) return;
    if (managed.error) throw toOpencodeError(managed.error, providerId);
    const tokens = managed.tokenProvider;
    let token = tokens.peek();
    if (!token) {
      try {
        token = await tokens.getToken();
      } catch (err) {
        throw toOpencodeError(err, providerId);
      }
    }
    output.headers.Authorization = `Bearer ${token.value}`;
  };
}
