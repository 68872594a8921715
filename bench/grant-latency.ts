/**
 * Figure 4: loopback latency of a token the cache cannot serve, i.e. one fresh subject token plus one grant.
 *
 * The library's TokenProvider runs against the loopback CI token service and IdP. Discovery happens once, during
 * warm-up, as in a real run. Each sample of the full round trip is a `getToken()` after the previous token was
 * invalidated (exactly the path a 401 from the provider takes). The split times the two legs separately, in the
 * same loop: `subjectToken()` (GitHub token request + local claim checks) and `requestWith()` (the token endpoint
 * request with that subject token, on the discovered configuration). Both legs run in the built package: its
 * bundled openid-client would refuse a configuration made by the one in node_modules.
 */
import type { World } from "../test/support/world.js";
import type { LibModule } from "./built-package.js";
import { PROVIDER_ID, parsedOAuth2Config } from "./provider-config.js";
import { median, msSince, percentile } from "./stats.js";

export interface LatencySummary {
  medianMs: number;
  p95Ms: number;
}

export interface GrantLatencyResult {
  samples: number;
  /** getToken() forced to a fresh grant. */
  roundTrip: LatencySummary;
  /** subjectToken() alone. */
  subjectToken: LatencySummary;
  /** requestWith() alone: the grant request. */
  grant: LatencySummary;
  /** Grants the IdP saw during the timed loop: 2 per sample (one for each path) proves none was served from cache. */
  idpGrants: number;
}

function summarize(samples: readonly number[]): LatencySummary {
  return { medianMs: median(samples), p95Ms: percentile(samples, 95) };
}

export async function measureGrantLatency(lib: LibModule, world: World, samples: number, warmup: number): Promise<GrantLatencyResult> {
  const config = parsedOAuth2Config(lib, world);
  const tokens = lib.createTokenProvider(PROVIDER_ID, config, { logger: lib.createLogger({ level: "silent" }) });

  for (let i = 0; i < warmup; i++) tokens.invalidate((await tokens.getToken()).value);

  const roundTrip: number[] = [];
  const subjectToken: number[] = [];
  const grant: number[] = [];
  const grantsBefore = world.idp.grants.length;
  for (let i = 0; i < samples; i++) {
    let start = process.hrtime.bigint();
    const token = await tokens.getToken();
    roundTrip.push(msSince(start));
    tokens.invalidate(token.value);

    start = process.hrtime.bigint();
    const subject = await tokens.subjectToken();
    subjectToken.push(msSince(start));
    start = process.hrtime.bigint();
    await tokens.requestWith(subject.token);
    grant.push(msSince(start));
  }
  const idpGrants = world.idp.grants.length - grantsBefore;
  if (idpGrants !== 2 * samples) throw new Error(`expected ${2 * samples} grants during the latency loop, the IdP saw ${idpGrants}`);

  return { samples, roundTrip: summarize(roundTrip), subjectToken: summarize(subjectToken), grant: summarize(grant), idpGrants };
}
