/**
 * KubernetesSource against a projected-volume directory laid out the way kubelet's AtomicWriter does it:
 * `oidc-token -> ..data/oidc-token`, `..data -> ..<timestamp>/`, rotated by renaming a new `..data` over the old one
 * and deleting the old directory.
 */
import { mkdir, mkdtemp, rename, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { DEFAULT_KUBERNETES_TOKEN_PATH } from "../../src/config/defaults.js";
import { SubjectTokenUnavailableError, type CiAuthError } from "../../src/errors.js";
import { KubernetesSource } from "../../src/subject-token/kubernetes.js";
import type { SubjectTokenContext } from "../../src/subject-token/source.js";
import { startCiIssuer, type CiIssuer } from "../support/ci-issuer.js";
import { fp, rejectionOf } from "../support/harness.js";

const AUDIENCE = "https://auth.example.com/realms/acme";
const NAME = "oidc-token";

let ci: CiIssuer;
let root: string;
let n = 0;

beforeAll(async () => {
  ci = await startCiIssuer();
  root = await mkdtemp(join(tmpdir(), "kubernetes-source-"));
});

afterAll(async () => {
  await ci?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

const context = (env: NodeJS.ProcessEnv = { KUBERNETES_SERVICE_HOST: "10.0.0.1" }): SubjectTokenContext => ({
  providerId: "miaou",
  env,
  fetch: () => Promise.reject(new Error("the kubernetes source must not make requests")),
  timeoutMs: 10_000,
});

/** A pod-bound token as the API server issues it. */
function podToken(podUid: string, extra: Record<string, unknown> = {}): Promise<string> {
  return ci.mint({
    aud: AUDIENCE,
    style: "plain",
    claims: {
      sub: "system:serviceaccount:ci:runner",
      "kubernetes.io": {
        namespace: "ci",
        serviceaccount: { name: "runner", uid: "sa-uid" },
        pod: { name: `runner-${podUid}`, uid: podUid },
      },
      ...extra,
    },
  });
}

/** A projected volume directory with kubelet's layout, and a rotate() that swaps `..data` the way kubelet does. */
async function projectedVolume(first: string): Promise<{ dir: string; path: string; rotate(token: string): Promise<void> }> {
  n += 1;
  const dir = join(root, `volume-${n}`);
  await mkdir(dir);
  let current = "";
  let generation = 0;
  const write = async (token: string) => {
    generation += 1;
    const stamped = `..2026_01_01_00_00_00.${String(generation).padStart(9, "0")}`;
    await mkdir(join(dir, stamped));
    await writeFile(join(dir, stamped, NAME), token, { mode: 0o600 });
    await symlink(stamped, join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
    if (current) await rm(join(dir, current), { recursive: true, force: true });
    current = stamped;
  };
  await write(first);
  await symlink(join("..data", NAME), join(dir, NAME));
  return { dir, path: join(dir, NAME), rotate: write };
}

describe("KubernetesSource", () => {
  it("defaults to /var/run/secrets/tokens/oidc-token (a projected volume, not the default service-account token)", () => {
    expect(DEFAULT_KUBERNETES_TOKEN_PATH).toBe("/var/run/secrets/tokens/oidc-token");
    expect(new KubernetesSource(DEFAULT_KUBERNETES_TOKEN_PATH, undefined).type).toBe("kubernetes");
  });

  it("reads the token through kubelet's symlinks, and again after every rotation", async () => {
    const first = await podToken("pod-1");
    const volume = await projectedVolume(first);
    const source = new KubernetesSource(volume.path, AUDIENCE);
    expect(fp(await source.getSubjectToken(context()))).toBe(fp(first));
    const second = await podToken("pod-1");
    await volume.rotate(second);
    expect(fp(await source.getSubjectToken(context()))).toBe(fp(second));
  });

  it("reads only whole tokens while kubelet keeps rotating", async () => {
    const tokens = await Promise.all(Array.from({ length: 6 }, () => podToken("pod-2")));
    const volume = await projectedVolume(tokens[0] as string);
    const source = new KubernetesSource(volume.path, AUDIENCE);
    const valid = new Set(tokens.map(fp));
    let rotating = true;
    const rotations = (async () => {
      for (let i = 0; i < 60; i++) await volume.rotate(tokens[i % tokens.length] as string);
      rotating = false;
    })();
    const seen: string[] = [];
    while (rotating) seen.push(fp(await source.getSubjectToken(context())));
    await rotations;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((t) => !valid.has(t))).toEqual([]);
  });

  it("a missing file explains the projected volume, and why the default token is not used", async () => {
    const path = join(root, "missing", NAME);
    const err = (await rejectionOf(new KubernetesSource(path, AUDIENCE).getSubjectToken(context()))) as CiAuthError;
    expect(err).toBeInstanceOf(SubjectTokenUnavailableError);
    expect(err.reason).toBe(
      `kubernetes subject token: the projected service-account token ${path} does not exist. Mount one: a \`projected\` volume with a \`serviceAccountToken\` source (\`audience\`: your IdP's, \`path\`: the file name) mounted at its directory (docs/configuration.md#kubernetes), or set subjectTokenSource.path. The pod's default token (/var/run/secrets/kubernetes.io/serviceaccount/token) is not used: its audience is the cluster's API server.`,
    );
    const outside = (await rejectionOf(new KubernetesSource(path, AUDIENCE).getSubjectToken(context({})))) as CiAuthError;
    expect(outside.reason).toContain("does not exist (this does not look like a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set).");
  });

  it("a directory (the mount point instead of the file) and an empty file get their own messages", async () => {
    const volume = await projectedVolume(await podToken("pod-3"));
    const dirErr = (await rejectionOf(new KubernetesSource(volume.dir, AUDIENCE).getSubjectToken(context()))) as CiAuthError;
    expect(dirErr.reason).toBe(
      `kubernetes subject token: ${volume.dir} is a directory: set subjectTokenSource.path to the token file inside it (the projection's \`path\`).`,
    );
    await volume.rotate("\n");
    const empty = (await rejectionOf(new KubernetesSource(volume.path, AUDIENCE).getSubjectToken(context()))) as CiAuthError;
    expect(empty.reason).toBe(`kubernetes subject token: the token file ${volume.path} is empty.`);
  });

  it.skipIf(process.getuid?.() === 0)("an unreadable file says how to give the container user access", async () => {
    const volume = await projectedVolume(await podToken("pod-4"));
    await chmod(join(volume.dir, "..data", NAME), 0o000);
    const err = (await rejectionOf(new KubernetesSource(volume.path, AUDIENCE).getSubjectToken(context()))) as CiAuthError;
    expect(err.reason).toMatch(/is not readable by this user\. Give the pod a `securityContext\.fsGroup`/);
  });

  it("cacheIdentity: the pod the token is bound to, stable across rotations, different per pod", async () => {
    const volume = await projectedVolume(await podToken("pod-5"));
    const source = new KubernetesSource(volume.path, AUDIENCE);
    const identity = await source.cacheIdentity(context());
    expect(identity).toBe(JSON.stringify(["kubernetes", volume.path, AUDIENCE, ci.issuer, "system:serviceaccount:ci:runner", "pod-5"]));
    await volume.rotate(await podToken("pod-5"));
    expect(await source.cacheIdentity(context())).toBe(identity);
    await volume.rotate(await podToken("pod-6"));
    expect(await source.cacheIdentity(context())).not.toBe(identity);
  });

  it("cacheIdentity: a token without a pod binding falls back to its fingerprint; no file, no identity", async () => {
    const unbound = await ci.mint({ aud: AUDIENCE, style: "plain" });
    const volume = await projectedVolume(unbound);
    const identity = await new KubernetesSource(volume.path, AUDIENCE).cacheIdentity(context());
    expect(identity).toBeDefined();
    expect(identity).not.toContain(unbound);
    expect(await new KubernetesSource(join(root, "nope"), AUDIENCE).cacheIdentity(context())).toBeUndefined();
  });
});
