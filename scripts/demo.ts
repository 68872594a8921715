/**
 * `npm run demo`: the whole flow on this machine, with the real opencode CLI.
 *
 * It starts a fake GitHub Actions token service, a real OAuth server (oidc-provider) that trusts it, and a mock
 * OpenAI-compatible model that accepts only that server's tokens. Then it runs `opencode run` with the plugin and
 * the README's config, narrating each step. Nothing leaves 127.0.0.1.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSandbox, REPO_ROOT } from "../test/support/opencode-cli.js";
import { packAndInstall } from "../test/support/packed-package.js";
import { githubActionsEnv, issueConfig } from "../test/support/issue-config.js";
import { startWorld } from "../test/support/world.js";

const say = (text = "") => process.stdout.write(`${text}\n`);
const step = (n: number, text: string) => say(`\n\x1b[1m${n}. ${text}\x1b[0m`);
/** A short, one-way fingerprint, so the demo can show which token went where without printing it. */
const fingerprint = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex").slice(0, 12)}`;

const world = await startWorld();
// The package as a user installs it: npm pack of the build (`npm run demo` builds first), installed with npm.
const packScratch = await mkdtemp(join(tmpdir(), "opencode-ci-auth-demo-"));
const { packageDir } = await packAndInstall(REPO_ROOT, packScratch);
let exitCode = 1;
try {
  step(1, "A local world on 127.0.0.1");
  say(`   CI token service (plays GitHub Actions) ${world.ci.issuer}`);
  say(`   OAuth server (oidc-provider)            ${world.idp.issuer}  (trusts the CI issuer's JWKS, allows repository acme/app)`);
  say(`   Model server (OpenAI-compatible)        ${world.model.baseURL}  (accepts only tokens that OAuth server issued)`);

  const config = issueConfig(world);
  const sandbox = await createSandbox(
    {
      // What a job with `permissions: id-token: write` gets from GitHub.
      ...githubActionsEnv(world),
      OPENCODE_CI_AUTH_LOG_LEVEL: "info",
    },
    { packageDir },
  );
  try {
    step(2, "opencode.json: no secret, no API key, no model list");
    say(JSON.stringify(config, null, 2).replace(/^/gm, "   "));
    await sandbox.writeConfig(config);

    step(3, 'opencode run --model miaou/mock-model "Say hello"   (the plugin\'s log lines follow, from stderr)');
    const result = await sandbox.run(["run", "--model", "miaou/mock-model", "Say hello"]);
    for (const line of result.stderr.split("\n")) if (line.includes("opencode-ci-auth")) say(`   ${line}`);

    step(4, "What opencode printed (stdout)");
    say(`   ${result.stdout.trim() || "(nothing)"}`);

    step(5, "What each server saw");
    const tokenRequests = world.ci.requests.filter((r) => r.path === "/_apis/token");
    say(`   CI token service: ${tokenRequests.length} token request(s), audience=${tokenRequests[0]?.query.audience ?? "-"}`);
    for (const g of world.idp.grants)
      say(`   OAuth server: ${g.grantType.split(":").pop()} grant for client ${g.clientId}: ${g.ok ? "issued" : `refused (${g.error})`}`);
    for (const r of world.model.requests) {
      const token = r.authorization?.replace(/^Bearer /, "") ?? "";
      const issued = world.idp.issuedTokens.has(token) ? "an access token the OAuth server issued" : "NOT an issued token";
      say(`   Model server: ${r.method} ${r.path} -> ${r.status}, Authorization: Bearer <${fingerprint(token)}>, ${issued}`);
    }

    const secrets = [...world.ci.tokensIssued, ...world.idp.issuedTokens, world.ci.requestToken];
    const leaked = secrets.some((s) => result.stdout.includes(s) || result.stderr.includes(s));
    step(6, "Result");
    const ok = result.code === 0 && world.idp.grants.length === 1 && !leaked;
    say(
      `   exit code ${result.code}; ${world.idp.grants.length} grant for the whole run; tokens in opencode's output: ${leaked ? "FOUND (bug!)" : "none"}`,
    );
    say(
      ok ? "   \x1b[32mThe run authenticated with the job's identity alone.\x1b[0m" : "   \x1b[31mSomething went wrong: see above.\x1b[0m",
    );
    exitCode = ok ? 0 : 1;
  } finally {
    await sandbox.dispose();
  }
} finally {
  await world.close();
  await rm(packScratch, { recursive: true, force: true });
}
process.exit(exitCode);
