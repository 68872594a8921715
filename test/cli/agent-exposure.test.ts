/** src/cli/agent-exposure.ts: when doctor warns about the agent's bash tool. */
import { describe, expect, it } from "vitest";

import { agentExposureWarning, bashToolEnabled } from "../../src/cli/agent-exposure.js";

describe("bashToolEnabled", () => {
  it.each([
    [{}, true],
    [{ tools: { bash: false } }, false],
    [{ permission: { bash: "deny" } }, false],
    [{ permission: { bash: "deny" }, agent: { build: { permission: { bash: "allow" } } } }, true],
    [{ tools: { bash: false }, agent: { review: { tools: { bash: true } } } }, true],
    [{ tools: { bash: false }, agent: { review: { tools: { read: true } } } }, false],
  ])("%j → %s", (config, expected) => {
    expect(bashToolEnabled(config)).toBe(expected);
  });
});

describe("agentExposureWarning", () => {
  it("warns only when a credential variable is set and bash is on", () => {
    expect(agentExposureWarning({}, {})).toBeUndefined();
    expect(agentExposureWarning({ tools: { bash: false } }, { ACTIONS_ID_TOKEN_REQUEST_TOKEN: "x" })).toBeUndefined();
    expect(agentExposureWarning({}, { ACTIONS_ID_TOKEN_REQUEST_TOKEN: "x" })).toContain("(ACTIONS_ID_TOKEN_REQUEST_TOKEN set)");
    expect(agentExposureWarning({}, { MY_VAR: "x" }, ["MY_VAR"])).toContain("(MY_VAR set)");
  });
});
