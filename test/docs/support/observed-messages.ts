/**
 * Messages whose words come from a library or the runtime, not from a template in src/: they are produced here from
 * real failing inputs, so a doc that quotes them is checked against what really happens.
 *
 * - zod's own messages, from invalid `oauth2` blocks run through the plugin's schema;
 * - the private_key_jwt key-file errors, from real key files: under Node (this process) and under Bun, the runtime
 *   opencode runs the plugin in (the opencode binary acts as `bun` with BUN_BE_BUN=1).
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { parseOAuth2Block } from "../../../src/config/parse.js";
import { createGrantClient } from "../../../src/grant/client.js";

const BASE = { clientId: "c", tokenEndpoint: "http://127.0.0.1:9/token", subjectTokenSource: { type: "env", var: "T" } };

/** Blocks whose problems zod words itself. */
const ZOD_WORDED_BLOCKS: unknown[] = [
  { ...BASE, expectClaims: { ref: " " } },
  { ...BASE, expectClaims: { ref: ["a", " "] } },
];

export function zodMessages(): string[] {
  return ZOD_WORDED_BLOCKS.flatMap((block) => {
    const parsed = parseOAuth2Block("p", block, {});
    return parsed.ok ? [] : parsed.error.issues.map((i) => `${i.path}: ${i.message}`);
  });
}

/** A key file and the privateKeyAlg to configure with it. */
export interface KeyCase {
  name: string;
  file: string;
  alg?: string;
}

const pem = (key: KeyObject, type: "pkcs1" | "pkcs8" | "sec1", extra: { cipher?: string; passphrase?: string } = {}) =>
  key.export({ type, format: "pem", ...extra }).toString();

/** Writes every kind of unusable key file the troubleshooting page lists into `dir`. */
export async function writeKeyCases(dir: string): Promise<KeyCase[]> {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const p521 = generateKeyPairSync("ec", { namedCurve: "P-521" }).privateKey;
  const files: Record<string, string> = {
    "pkcs1.pem": pem(rsa, "pkcs1"),
    "sec1.pem": pem(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, "sec1"),
    "empty.pem": "",
    "not-pem.pem": "not a key\n",
    "encrypted.pem": pem(rsa, "pkcs8", { cipher: "aes-256-cbc", passphrase: "test only" }),
    "rsa.pem": pem(rsa, "pkcs8"),
    "p521.pem": pem(p521, "pkcs8"),
    "ed448.pem": pem(generateKeyPairSync("ed448").privateKey, "pkcs8"),
    "dsa.pem": pem(generateKeyPairSync("dsa", { modulusLength: 2048, divisorLength: 256 }).privateKey, "pkcs8"),
    "secp256k1.pem": pem(generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey, "pkcs8"),
    "rsa-pss.pem": pem(generateKeyPairSync("rsa-pss", { modulusLength: 2048 }).privateKey, "pkcs8"),
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  await mkdir(join(dir, "a-directory"));
  const at = (file: string) => join(dir, file);
  return [
    { name: "missing", file: at("missing.pem") },
    { name: "directory", file: at("a-directory") },
    { name: "PKCS#1", file: at("pkcs1.pem") },
    { name: "SEC1", file: at("sec1.pem") },
    { name: "empty", file: at("empty.pem") },
    { name: "not PEM", file: at("not-pem.pem") },
    { name: "encrypted", file: at("encrypted.pem") },
    { name: "encrypted, alg set", file: at("encrypted.pem"), alg: "RS256" },
    { name: "RSA as ES256", file: at("rsa.pem"), alg: "ES256" },
    { name: "P-521 as ES256", file: at("p521.pem"), alg: "ES256" },
    { name: "Ed448", file: at("ed448.pem") },
    { name: "Ed448 as EdDSA", file: at("ed448.pem"), alg: "EdDSA" },
    { name: "DSA", file: at("dsa.pem") },
    { name: "DSA as RS256", file: at("dsa.pem"), alg: "RS256" },
    { name: "secp256k1", file: at("secp256k1.pem") },
    { name: "RSA-PSS", file: at("rsa-pss.pem") },
    { name: "RSA-PSS as PS256", file: at("rsa-pss.pem"), alg: "PS256" },
  ];
}

/** The grant client's error for one key file: what `opencode run` prints after the provider prefix. */
export async function keyFileReason(keyCase: KeyCase): Promise<string> {
  const block = {
    ...BASE,
    tokenEndpointAuthMethod: "private_key_jwt",
    privateKeyPath: keyCase.file,
    ...(keyCase.alg ? { privateKeyAlg: keyCase.alg } : {}),
  };
  const parsed = parseOAuth2Block("p", block, {});
  if (!parsed.ok) throw new Error(`key case ${keyCase.name}: ${parsed.error.message}`);
  try {
    await createGrantClient("p", parsed.config);
  } catch (err) {
    return (err as { reason?: string }).reason ?? String(err);
  }
  throw new Error(`key case ${keyCase.name}: the key was accepted`);
}

/** The same reasons, computed by Bun: the opencode binary runs this module's logic from src/ (`srcDir`). */
export async function keyFileReasonsUnderBun(opencodeBin: string, srcDir: string, cases: KeyCase[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "opencode-ci-auth-docs-bun-"));
  try {
    const script = join(dir, "probe.mjs");
    await writeFile(
      script,
      `const { createGrantClient } = await import(${JSON.stringify(pathToFileURL(join(srcDir, "grant", "client.ts")).href)});
const { parseOAuth2Block } = await import(${JSON.stringify(pathToFileURL(join(srcDir, "config", "parse.ts")).href)});
const base = ${JSON.stringify(BASE)};
const out = [];
for (const c of ${JSON.stringify(cases)}) {
  const parsed = parseOAuth2Block("p", { ...base, tokenEndpointAuthMethod: "private_key_jwt", privateKeyPath: c.file, ...(c.alg ? { privateKeyAlg: c.alg } : {}) }, {});
  try { await createGrantClient("p", parsed.config); out.push("accepted: " + c.name); } catch (err) { out.push(err.reason ?? String(err)); }
}
process.stdout.write(JSON.stringify(out));
`,
    );
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(opencodeBin, [script], { env: { ...process.env, BUN_BE_BUN: "1" }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    if (code !== 0) throw new Error(`bun probe exited with ${code}: ${stderr}`);
    return JSON.parse(stdout) as string[];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
