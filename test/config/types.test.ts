/**
 * src/config/types.ts spells out the configuration types so the published declarations need no zod. These checks
 * are compile-time (`npm run typecheck` fails when the written types drift from the schemas); the runtime part only
 * shows that a parsed block is usable as the written type.
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { parseOAuth2Block } from "../../src/config/parse.js";
import type { AUTH_FLOWS, oauth2Schema } from "../../src/config/schema.js";
import type { AuthFlow, OAuth2Config, OAuth2Input, SubjectTokenSourceConfig } from "../../src/config/types.js";
import type { SOURCES } from "../../src/subject-token/sources.js";

describe("the written-out configuration types", () => {
  it("equal the zod schemas' input and output types", () => {
    expectTypeOf<OAuth2Input>().toEqualTypeOf<z.input<typeof oauth2Schema>>();
    expectTypeOf<OAuth2Config>().toEqualTypeOf<z.output<typeof oauth2Schema>>();
    expectTypeOf<AuthFlow>().toEqualTypeOf<(typeof AUTH_FLOWS)[number]>();
    expectTypeOf<SubjectTokenSourceConfig>().toEqualTypeOf<ReturnType<(typeof SOURCES)[number]["schema"]["parse"]>>();
  });

  it("type what the parser returns", () => {
    const parsed = parseOAuth2Block("miaou", {
      issuer: "https://idp.example",
      clientId: "ci",
      subjectTokenSource: { type: "github_actions" },
    });
    if (!parsed.ok) throw parsed.error;
    expectTypeOf(parsed.config).toEqualTypeOf<OAuth2Config>();
    expect(parsed.config.subjectTokenSource.type).toBe("github_actions");
    expect(parsed.config.authFlow).toBe("jwt_bearer");
  });
});
