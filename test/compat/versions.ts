/**
 * The opencode releases `npm run test:compat` checks and the CI job matrix runs, one job each, newest first: the
 * latest release, the first 1.18, the last 1.17, and 1.17.0, the oldest release that passes every core scenario
 * (README.md, "Supported opencode versions", says why older ones do not). test/compat/matrix.test.ts keeps .github/workflows/ci.yml, package.json's peerDependencies, the README,
 * the CI entry points' `opencode-version` defaults and the examples in line with this list.
 */
export const COMPAT_VERSIONS = ["1.18.33", "1.18.3", "1.17.19", "1.17.0"] as const;
