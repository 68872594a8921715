/**
 * Figure 1: the cost of a cached `chat.headers` call, the hook opencode awaits before every LLM request.
 *
 * The hooks are built the real way (built plugin entry → plugin function → `config` hook on an opencode-shaped
 * config, which validates, discovers models and so runs the first grant). Each timed call then looks like
 * opencode's: fresh input and output objects, awaited. The same loop times a no-op async function, interleaved
 * round by round, so the result is also a ratio to the cheapest possible awaited hook.
 */
import type { PluginInput } from "@opencode-ai/plugin";
import type { World } from "../test/support/world.js";
import type { PluginEntryModule } from "./built-package.js";
import { PROVIDER_ID, opencodeConfig } from "./provider-config.js";
import { median } from "./stats.js";

export const HOT_PATH_TARGET_US = 5;

type ChatHeaders = (input: { model: { providerID: string } }, output: { headers: Record<string, string> }) => Promise<void>;

export interface HotPathOptions {
  callsPerRound: number;
  rounds: number;
  warmupCalls: number;
}

export interface HotPathResult {
  /** Median over rounds of the per-call cost of a cached chat.headers call, µs. */
  usPerCall: number;
  /** Same for `async () => {}` called and awaited the same way, µs. */
  baselineUsPerCall: number;
  /** usPerCall / baselineUsPerCall. */
  ratioToNoopAsync: number;
  targetUs: number;
  pass: boolean;
  rounds: number;
  callsPerRound: number;
  roundsUs: number[];
  baselineRoundsUs: number[];
  /** Grants the IdP saw while timing: 0 proves every timed call was served from the cache. */
  grantsDuringTiming: number;
  /** Models the `config` hook discovered (proof the hook ran against the mock model server). */
  discoveredModels: string[];
}

const noopAsync: ChatHeaders = async () => {};

/** µs per call of `calls` sequential awaited calls, each with fresh arguments as opencode passes them. */
async function timeCalls(hook: ChatHeaders, calls: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await hook({ model: { providerID: PROVIDER_ID } }, { headers: {} });
  return Number(process.hrtime.bigint() - start) / 1000 / calls;
}

async function buildHooks(entry: PluginEntryModule, world: World): Promise<{ chatHeaders: ChatHeaders; discoveredModels: string[] }> {
  // The plugin reads nothing from its input; opencode's real one carries a client, a shell, paths.
  const hooks = await entry.default({} as PluginInput, {});
  if (!hooks.config || !hooks["chat.headers"]) throw new Error("the plugin returned no config or chat.headers hook");
  const config = opencodeConfig(world);
  await hooks.config(config);
  const models = config.provider?.[PROVIDER_ID]?.models ?? {};
  return { chatHeaders: hooks["chat.headers"] as unknown as ChatHeaders, discoveredModels: Object.keys(models) };
}

export async function measureHotPath(entry: PluginEntryModule, world: World, options: HotPathOptions): Promise<HotPathResult> {
  const { chatHeaders, discoveredModels } = await buildHooks(entry, world);

  const probe = { headers: {} as Record<string, string> };
  await chatHeaders({ model: { providerID: PROVIDER_ID } }, probe);
  if (!probe.headers.Authorization?.startsWith("Bearer ")) throw new Error("chat.headers did not set a Bearer Authorization header");

  await timeCalls(noopAsync, options.warmupCalls);
  await timeCalls(chatHeaders, options.warmupCalls);

  const grantsBefore = world.idp.grants.length;
  const roundsUs: number[] = [];
  const baselineRoundsUs: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    baselineRoundsUs.push(await timeCalls(noopAsync, options.callsPerRound));
    roundsUs.push(await timeCalls(chatHeaders, options.callsPerRound));
  }
  const grantsDuringTiming = world.idp.grants.length - grantsBefore;

  const usPerCall = median(roundsUs);
  const baselineUsPerCall = median(baselineRoundsUs);
  return {
    usPerCall,
    baselineUsPerCall,
    ratioToNoopAsync: usPerCall / baselineUsPerCall,
    targetUs: HOT_PATH_TARGET_US,
    pass: usPerCall < HOT_PATH_TARGET_US && grantsDuringTiming === 0,
    rounds: options.rounds,
    callsPerRound: options.callsPerRound,
    roundsUs,
    baselineRoundsUs,
    grantsDuringTiming,
    discoveredModels,
  };
}
