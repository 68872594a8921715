/**
 * Reads a subject token out of a field of a token service's JSON answer: GitHub's `value`, Azure's `oidcToken`, a
 * `url` source's configured `field`. One place for the three, so their messages and checks cannot drift. A field
 * is a key, or a dotted path reaching into nested objects (`data.token`). The answer's body is never quoted.
 */
import { SubjectTokenRequestError } from "../errors.js";
import type { HttpTokenAnswer } from "./http-token-request.js";

/** `field` as a key of `value`, else as a dotted path into nested objects (`data.token`). */
export function readField(value: unknown, field: string): unknown {
  if (value === null || typeof value !== "object") return undefined;
  const record = value as Record<string, unknown>;
  if (Object.hasOwn(record, field)) return record[field];
  let current: unknown = value;
  for (const part of field.split(".")) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

export interface JsonTokenField {
  source: string;
  providerId: string;
  /** How the service is named in messages, as for requestTokenOverHttp. */
  service: string;
  url: URL;
  field: string;
  /** Added after "did not answer JSON", e.g. what to configure instead. */
  notJsonHint?: string | undefined;
  /** Added after a missing or unusable field, e.g. which setting names it. */
  fieldHint?: string | undefined;
}

/** The trimmed, non-empty string at `field` of the answer's JSON body; a SubjectTokenRequestError otherwise. */
export function tokenFromJson(answer: HttpTokenAnswer, where: JsonTokenField): string {
  const { source, providerId, service, url, field } = where;
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    throw new SubjectTokenRequestError(
      source,
      `${service} at ${url.origin} did not answer JSON${where.notJsonHint ? ` ${where.notJsonHint}` : ""}.`,
      {
        providerId,
        status: answer.status,
      },
    );
  }
  const value = readField(parsed, field);
  if (typeof value === "string" && value.trim().length > 0) return value.trim();
  const what =
    value === undefined
      ? "is missing"
      : typeof value === "string"
        ? "is empty"
        : `is ${value === null ? "null" : `a ${typeof value}`}, not a string`;
  throw new SubjectTokenRequestError(
    source,
    `the field "${field}" of the JSON answer from ${service} (${url.origin}) ${what}.${where.fieldHint ? ` ${where.fieldHint}` : ""}`,
    {
      providerId,
      status: answer.status,
    },
  );
}
