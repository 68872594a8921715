/**
 * `npm run bench [-- --json]`: measures, in one run on loopback only, the figures docs/performance.md explains:
 *   1. the cost of a cached chat.headers call (target < 5 µs) and its ratio to a no-op async call,
 *   2. the grants caused by 100 concurrent getToken() calls at expiry (must be 1),
 *   3. the time to import the plugin entry in a fresh process, and its ratio to an empty module, then the plugin's
 *      start (import, plugin, config and shell.env hooks),
 *   4. the latency of a fresh subject token + grant, with its split,
 *   5. whole `opencode run` invocations of the real CLI: static key, a no-op plugin and this plugin, each cold and with
 *      opencode's config dir prepared (`--no-whole-run` skips it, `--whole-run-rounds N` sets its rounds, default 5).
 * Prints a table (or a JSON object with --json) on stdout; exits 1 when a check fails. No token is ever printed.
 */
import { startWorld } from "../test/support/world.js";
import { loadLib, loadPluginEntry } from "./built-package.js";
import { measureGrantLatency } from "./grant-latency.js";
import { measureHotPath } from "./hot-path.js";
import { measureImportTime } from "./import-time.js";
import { useGitHubActionsEnv } from "./provider-config.js";
import { allPass, toJson, toTable, type BenchResults } from "./report.js";
import { measureSingleFlight } from "./single-flight.js";
import { STATIC_KEY, VARIANTS, measureWholeRun } from "./whole-run.js";

const SETTINGS = {
  hotPath: { callsPerRound: 200_000, rounds: 7, warmupCalls: 50_000 },
  concurrentCallers: 100,
  importRuns: 11,
  latency: { samples: 200, warmup: 20 },
  accessTokenTtlSeconds: 600,
  /** A hung server must not hang the bench: give up well after a normal run (~5 s on 2 cores). */
  watchdogMs: 120_000,
  /** Figure 5: rounds of every variant, and the watchdog's allowance per opencode run (4-10 s each, alone). */
  wholeRun: { rounds: 5, allowanceMsPerRun: 60_000 },
} as const;

const json = process.argv.includes("--json");
const wholeRun = !process.argv.includes("--no-whole-run");
const roundsArg = process.argv.indexOf("--whole-run-rounds");
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : SETTINGS.wholeRun.rounds;
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write("bench: --whole-run-rounds needs a whole number of at least 1\n");
  process.exit(2);
}
process.env.OPENCODE_CI_AUTH_LOG_LEVEL = "silent";

const watchdogMs = SETTINGS.watchdogMs + (wholeRun ? (rounds + 2) * VARIANTS.length * SETTINGS.wholeRun.allowanceMsPerRun : 0);
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: no result after ${watchdogMs / 1000} s, giving up\n`);
  process.exit(2);
}, watchdogMs);
watchdog.unref();

const started = process.hrtime.bigint();
const date = new Date();

// Child processes first, while this process is still idle.
const importTime = await measureImportTime(SETTINGS.importRuns);

// The model server takes the IdP's tokens, and the static key of figure 5's runs without this plugin.
let isValidAccessToken: (token: string) => Promise<boolean> = async () => false;
const world = await startWorld({
  idp: { accessTokenTtl: SETTINGS.accessTokenTtlSeconds },
  model: { validateToken: async (token) => token === STATIC_KEY || (await isValidAccessToken(token)) },
});
isValidAccessToken = (token) => world.idp.isValidAccessToken(token);
let results: BenchResults;
try {
  useGitHubActionsEnv(world);
  const [entry, lib] = await Promise.all([loadPluginEntry(), loadLib()]);
  const hotPath = await measureHotPath(entry, world, SETTINGS.hotPath);
  const singleFlight = await measureSingleFlight(lib, world, SETTINGS.concurrentCallers, SETTINGS.accessTokenTtlSeconds);
  const grantLatency = await measureGrantLatency(lib, world, SETTINGS.latency.samples, SETTINGS.latency.warmup);
  const whole = wholeRun ? await measureWholeRun(world, rounds, (line) => process.stderr.write(`${line}\n`)) : undefined;
  results = {
    hotPath,
    singleFlight,
    importTime,
    grantLatency,
    wholeRun: whole,
    durationMs: Number(process.hrtime.bigint() - started) / 1e6,
  };
} finally {
  await world.close();
}

process.stdout.write(`${json ? toJson(results, date) : toTable(results, date)}\n`);
if (!allPass(results)) process.exitCode = 1;
