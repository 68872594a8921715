#!/usr/bin/env node
/**
 * The `opencode-ci-auth` command: `doctor` explains whether each provider's chain works here, `token` hands an
 * access token to other steps, `prepare` readies opencode's config dirs so a run does not install into them. Exit codes: 0 all good, 1 a provider (or the token) failed, 2 usage error.
 */
import { appendFile, readFile } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CiAuthError } from "../errors.js";
import { createLogger, resolveLogFormat, resolveLogLevel } from "../log.js";
import { loadOpencodeConfig, opencodeConfigDirs } from "./config-files.js";
import { runDoctor } from "./doctor.js";
import { renderJson, renderMarkdown, renderText } from "./doctor-report.js";
import { PrepareError, runPrepare } from "./prepare.js";
import { TokenCommandError, runToken } from "./token.js";

const HELP = `Usage: opencode-ci-auth <command> [options]

Check and use the OIDC-based authentication of opencode providers in CI.

Commands:
  doctor   Check each provider's chain: config, subject token, discovery, grant
  token    Print a fresh access token for one provider
  prepare  Install @opencode-ai/plugin where opencode would install it at start

Options:
  -h, --help     Show help (also: opencode-ci-auth <command> --help)
  -V, --version  Show the version

Exit codes: 0 success, 1 a check or the token request failed, 2 usage error.
Logs go to stderr; set OPENCODE_CI_AUTH_LOG_LEVEL=info (or debug) for more.
`;

const DOCTOR_HELP = `Usage: opencode-ci-auth doctor [--provider ID] [--config PATH] [--json]

Walk each provider that has options.oauth2 through its chain and print one line per
step, with ✓/✗ and the fix on ✗: config valid, subject token obtained (non-secret
claims, lifetime left, audience, expectClaims), discovery reached, grant.
Never prints a token, a secret or a signature.

Options:
  -p, --provider ID   Check only this provider
  -c, --config PATH   Use this opencode config file instead of opencode's search
      --json          Print the report as JSON
  -h, --help          Show this help

The config is found as opencode finds it: OPENCODE_CONFIG, opencode.json(c) from the
current directory up, .opencode/, OPENCODE_CONFIG_DIR, OPENCODE_CONFIG_CONTENT and the
global config. On GitHub Actions the report is also added to $GITHUB_STEP_SUMMARY.

Exit codes: 0 every provider is ready, 1 a provider fails (or none is found), 2 usage error.
`;

const TOKEN_HELP = `Usage: opencode-ci-auth token --provider ID [--json] [--github-output NAME]

Print a fresh access token for the provider, from the same chain opencode uses.

Options:
  -p, --provider ID         The provider (required)
  -c, --config PATH         Use this opencode config file instead of opencode's search
      --json                Print {"access_token", "token_type", "expires_at", "scope"}
      --github-output NAME  Write the token to $GITHUB_OUTPUT as output NAME, not stdout
  -h, --help                Show this help

On GitHub Actions the token is masked first, with ::add-mask:: on stderr: stdout holds only
the token, so TOKEN=$(opencode-ci-auth token -p ID) works.

Exit codes: 0 the token was printed (or written), 1 it could not be obtained, 2 usage error.
`;

const PREPARE_HELP = `Usage: opencode-ci-auth prepare [--opencode-version VERSION] [--cache-dir DIR] [--dir DIR]...

With any plugin configured, opencode installs @opencode-ai/plugin (its own version) into
each config dir before it loads plugins: about 5 s on a fresh CI runner. prepare puts it
there first, in the form opencode accepts without installing again. npm installs it with
--ignore-scripts. Running it again does nothing when the dirs are already prepared.

Options:
      --opencode-version VERSION  Match this opencode version (default: opencode --version)
      --opencode PATH             The opencode command to ask for its version (default: opencode)
      --cache-dir DIR             Keep the install in DIR for a CI cache; a restored one is used
                                  only if every file matches the registry's tarballs
      --dir DIR                   Prepare DIR (repeatable) instead of opencode's config dirs
  -h, --help                      Show this help

opencode's config dirs: $XDG_CONFIG_HOME/opencode (or ~/.config/opencode), each .opencode/
from here up to the git root, ~/.opencode and OPENCODE_CONFIG_DIR.

Exit codes: 0 the dirs are prepared, 1 a step failed (the message names it and the fix), 2 usage error.
`;

const out = (text: string) => process.stdout.write(text);
const err = (text: string) => process.stderr.write(text);

class UsageError extends Error {}

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

function parse(args: string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * A `--config` file that does not exist is a usage error (exit 2); one that exists but does not parse is a failed
 * check of the user's config (exit 1), like any other config problem.
 */
function configFileProblem(explicit: string | boolean | undefined, source: { path: string; error?: string } | undefined): void {
  if (!explicit || !source?.error) return;
  if (source.error.startsWith("ENOENT")) throw new UsageError(`--config: cannot read ${source.path} (${source.error})`);
  throw new ConfigFileError(`opencode-ci-auth: --config: ${source.path} is not a valid opencode config (${source.error})`);
}

class ConfigFileError extends Error {}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function doctor(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const values = parse(args, {
    provider: { type: "string", short: "p" },
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
  });
  if (values.help) return (out(DOCTOR_HELP), 0);
  const loaded = await loadOpencodeConfig({ env, explicitPath: values.config as string | undefined });
  configFileProblem(values.config, loaded.sources[0]);
  const report = await runDoctor({
    config: loaded.config,
    sources: loaded.sources,
    providerId: values.provider as string | undefined,
    env,
  });
  out(values.json ? renderJson(report) : renderText(report));
  if (env.GITHUB_ACTIONS === "true" && env.GITHUB_STEP_SUMMARY) {
    await appendFile(env.GITHUB_STEP_SUMMARY, renderMarkdown(report)).catch((e: unknown) =>
      err(`opencode-ci-auth: could not write $GITHUB_STEP_SUMMARY (${(e as NodeJS.ErrnoException).code ?? "error"})\n`),
    );
  }
  return report.ok ? 0 : 1;
}

async function token(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const values = parse(args, {
    provider: { type: "string", short: "p" },
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
    "github-output": { type: "string" },
  });
  if (values.help) return (out(TOKEN_HELP), 0);
  if (!values.provider) throw new UsageError("token: --provider ID is required");
  const loaded = await loadOpencodeConfig({ env, explicitPath: values.config as string | undefined });
  configFileProblem(values.config, loaded.sources[0]);
  const logger = createLogger({ level: resolveLogLevel(undefined, env), format: resolveLogFormat(undefined, env) });
  await runToken({
    config: loaded.config,
    providerId: values.provider as string,
    json: Boolean(values.json),
    githubOutput: values["github-output"] as string | undefined,
    env,
    logger,
    write: out,
    writeError: err,
  });
  return 0;
}

async function prepare(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: ReturnType<typeof parseArgs>["values"];
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "opencode-version": { type: "string" },
        opencode: { type: "string" },
        "cache-dir": { type: "string" },
        dir: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return (out(PREPARE_HELP), 0);
  const cwd = process.cwd();
  const given = values.dir as string[] | undefined;
  await runPrepare({
    opencodeVersion: values["opencode-version"] as string | undefined,
    opencodeBin: values.opencode as string | undefined,
    cacheDir: values["cache-dir"] ? resolve(cwd, values["cache-dir"] as string) : undefined,
    dirs: given?.length ? [...new Set(given.map((d) => resolve(cwd, d)))] : await opencodeConfigDirs(cwd, env, env.HOME || undefined),
    env,
    write: out,
  });
  return 0;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "doctor":
        return await doctor(rest, env);
      case "token":
        return await token(rest, env);
      case "prepare":
        return await prepare(rest, env);
      case "-V":
      case "--version":
        return (out(`${await version()}\n`), 0);
      case undefined:
        return (err(HELP), 2);
      case "-h":
      case "--help":
      case "help":
        return (out(HELP), 0);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`opencode-ci-auth: ${e.message}\nRun 'opencode-ci-auth --help' for usage.\n`);
      return 2;
    }
    if (e instanceof PrepareError) {
      err(`opencode-ci-auth: ${e.message}\n`);
      return 1;
    }
    if (e instanceof CiAuthError || e instanceof TokenCommandError || e instanceof ConfigFileError) {
      err(`${e instanceof TokenCommandError ? "opencode-ci-auth: " : ""}${e.message}\n`);
      return 1;
    }
    err(`opencode-ci-auth: unexpected failure (${(e as Error).name ?? typeof e}). Please report it.\n`);
    return 1;
  }
}

/** Whether this module is the program (run directly or through the npm bin link), not imported by a test. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
