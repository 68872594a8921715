#!/usr/bin/env node
// Adds the lockfile entries npm leaves out for other platforms' optional packages (opencode-darwin-arm64,
// @msgpackr-extract/*-win32-x64, ...). npm writes them only when the registry serves those packages; a registry
// mirror that serves just this platform's binaries makes npm omit them, and `npm ci` then refuses the lockfile
// ("Missing: opencode-darwin-arm64@ from lock file"). Each entry is what npm itself writes for a package it will
// not install here: version, os/cpu/libc, optional. Run after any `npm install` that changes the lockfile:
//   npm run lockfile:platforms
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";

const PLATFORM = /(darwin|linux|win32|windows|freebsd|android)-(arm64|x64|arm|ia32)/;
const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const packages = lock.packages;
const added = [];
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key] || packages[`${path}/${key}`]) continue;
    const match = name.match(PLATFORM);
    if (!match) continue; // only platform binaries are expected to be missing; anything else is a real problem
    packages[key] = {
      version,
      cpu: [match[2]],
      ...(entry.dev ? { dev: true } : {}),
      ...(name.includes("musl") ? { libc: ["musl"] } : {}),
      optional: true,
      os: [match[1] === "windows" ? "win32" : match[1]],
    };
    added.push(`${name}@${version}`);
  }
}
const byPath = ([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0);
lock.packages = Object.fromEntries(Object.entries(packages).sort(byPath));
writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`);
process.stderr.write(added.length ? `added ${added.length} platform entries: ${added.join(", ")}\n` : "lockfile already complete\n");
