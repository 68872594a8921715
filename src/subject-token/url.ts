/**
 * A generic URL that answers a GET with the token: as the whole body (`text`), or in a field of a JSON body
 * (`json`). For token services this plugin has no dedicated source for, and sidecars. Header values may hold
 * credentials (`{env:VAR}`); they only ever go to this URL (https, or loopback), and never into a message.
 * @see https://google.aip.dev/auth/4117 (the same idea: "URL-sourced credentials")
 */
import { SubjectTokenRequestError } from "../errors.js";
import { requestTokenOverHttp } from "./http-token-request.js";
import { tokenFromJson } from "./json-token-field.js";
import type { SubjectTokenContext, SubjectTokenSource } from "./source.js";
import * as z from "zod/mini";
import { audience, text, tokenUrl } from "../config/fields.js";
import { insecureReason } from "../http/transport.js";
import { defineSource } from "./definition.js";

const SOURCE = "url";

export interface UrlSourceOptions {
  url: string;
  headers?: Record<string, string> | undefined;
  format: "text" | "json";
  field?: string | undefined;
  audience?: string | undefined;
}

export class UrlSource implements SubjectTokenSource {
  readonly type = SOURCE;
  readonly expectedAudience: string | undefined;
  /** None in the environment: this source reads a file, a server or a program. */
  readonly credentialEnv: readonly string[] = [];
  readonly #options: UrlSourceOptions;

  constructor(options: UrlSourceOptions) {
    this.#options = options;
    this.expectedAudience = options.audience;
  }

  /** `Accept` for the format, unless the configured headers set it (in any case). */
  #defaultHeaders(): Record<string, string> {
    const configured = Object.keys(this.#options.headers ?? {}).some((name) => name.toLowerCase() === "accept");
    return configured ? {} : { accept: this.#options.format === "json" ? "application/json" : "application/jwt, text/plain" };
  }

  /** None: a URL says nothing about which job asks, so the file cache is not used with this source. */
  async cacheIdentity(): Promise<string | undefined> {
    return undefined;
  }

  async getSubjectToken(context: SubjectTokenContext): Promise<string> {
    const { providerId } = context;
    const { format, field } = this.#options;
    // The schema checked the transport rule already.
    const url = new URL(this.#options.url);
    const answer = await requestTokenOverHttp(context, {
      source: SOURCE,
      service: "the token URL",
      url,
      headers: { ...this.#defaultHeaders(), ...this.#options.headers },
      redirectReason: "the headers are only sent to the configured url; configure the final URL",
    });
    if (format === "text") {
      const token = answer.body.trim();
      if (!token)
        throw new SubjectTokenRequestError(SOURCE, `the token URL at ${url.origin} answered an empty body.`, {
          providerId,
          status: answer.status,
        });
      return token;
    }
    return tokenFromJson(answer, {
      source: SOURCE,
      providerId,
      service: "the token URL",
      url,
      field: field ?? "",
      notJsonHint: '(format is "json"); use format "text" if the body is the token itself',
      fieldHint: "Set field to the name of the field that holds the token.",
    });
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const url = defineSource({
  type: SOURCE,
  schema: z
    .strictObject({
      type: z.literal(SOURCE),
      url: tokenUrl("url", insecureReason),
      /** Request headers; values may use `{env:VAR}` (substituted by opencode when it reads the config). */
      headers: z.optional(
        z.record(z.string().check(z.regex(HEADER_NAME)), text("headers value"), {
          error: (issue) =>
            issue.code === "invalid_key"
              ? "headers keys must be HTTP header names (letters, digits and !#$%&'*+.^_`|~-)"
              : 'headers must be an object such as { "Authorization": "Bearer {env:TOKEN_SERVICE_TOKEN}" }',
        }),
      ),
      /** `text`: the body is the JWT. `json`: the JWT is at `field` in a JSON body. */
      format: z._default(z.enum(["text", "json"], { error: 'format must be "text" or "json"' }), "text"),
      /** With `json`: the field that holds the JWT; a dotted path such as `data.token` reaches into objects. */
      field: z.optional(text("field")),
      audience,
    })
    .check(
      z.superRefine((c, ctx) => {
        if (c.format === "json" && c.field === undefined)
          ctx.addIssue({
            code: "custom",
            path: ["field"],
            message: 'field is required with format "json" (the name of the field that holds the token)',
          });
        if (c.format === "text" && c.field !== undefined)
          ctx.addIssue({ code: "custom", path: ["field"], message: 'field only applies to format "json"' });
      }),
    ),
  create: (config) => new UrlSource(config),
  // Its headers' variables are found by value (src/agent/agent-secrets.ts): opencode substituted them already.
  credentialEnv: [],
});
