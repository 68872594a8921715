/**
 * Hides token-shaped text in anything that came from a server, a program or the environment, before it reaches a
 * message or a log line. Shape-based: it needs no knowledge of which tokens exist.
 *
 * - A JWT (`eyJ…` header, a dot, a payload, optionally a dot and a signature) becomes `[redacted]`.
 * - A run of 32 or more token characters that looks random (a digit and a letter, or upper and lower case) becomes
 *   `[redacted]`: opaque access tokens, client secrets and request tokens look like this; URLs, ids and words do not.
 *
 * Both passes run in linear time, whatever the input: a hostile server's 1 MB body of `eyJeyJeyJ…` must not block
 * the event loop (a backtracking regex took seconds on 80 KB). Callers scrub the whole text first and cut it after
 * (`quote`), so a token that straddles the cut is never half-shown.
 */

export const CENSOR = "[redacted]";
/** Shorter random-looking runs are not recognised: ids, hashes and words stay readable. */
export const OPAQUE_MIN_LENGTH = 32;

/** Base64url characters: what JWT segments are made of. */
const isBase64Url = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 /* - */ || c === 95; /* _ */
const isDottedRunChar = (c: number): boolean => isBase64Url(c) || c === 46; /* . */
/** Characters of opaque tokens: base64url plus `~+=` (standard base64 padding, RFC 6750 b64token). */
const isOpaqueChar = (c: number): boolean => isBase64Url(c) || c === 126 /* ~ */ || c === 43 /* + */ || c === 61; /* = */

/**
 * `text` with every maximal run of `inRun` characters passed through `replace`. A plain loop over char codes, not a
 * regex: linear, and no regex engine stack to overflow on a 10 MB run.
 */
function replaceRuns(text: string, inRun: (c: number) => boolean, replace: (run: string) => string): string {
  const parts: string[] = [];
  let last = 0;
  for (let i = 0; i < text.length;) {
    if (!inRun(text.charCodeAt(i))) {
      i += 1;
      continue;
    }
    let end = i + 1;
    while (end < text.length && inRun(text.charCodeAt(end))) end += 1;
    const run = text.slice(i, end);
    const replaced = replace(run);
    if (replaced !== run) {
      parts.push(text.slice(last, i), replaced);
      last = end;
    }
    i = end;
  }
  if (last === 0) return text;
  parts.push(text.slice(last));
  return parts.join("");
}

const looksRandom = (run: string): boolean => (/\d/.test(run) && /[A-Za-z]/.test(run)) || (/[A-Z]/.test(run) && /[a-z]/.test(run));

/**
 * The JWTs inside one dotted run, as the segments between dots: a JWT starts at an `eyJ` inside a segment, takes
 * the rest of that segment, a non-empty next segment, and the one after it when there is one.
 */
function replaceJwtsInRun(run: string, replace: (jwt: string) => string): string {
  if (!run.includes("eyJ")) return run;
  const segments = run.split(".");
  const out: string[] = [];
  let i = 0;
  while (i < segments.length) {
    const segment = segments[i] as string;
    const at = segment.indexOf("eyJ");
    const payload = segments[i + 1];
    if (at === -1 || payload === undefined || payload.length === 0) {
      out.push(segment);
      i += 1;
      continue;
    }
    // The signature segment is optional ("alg": "none" tokens end with a dot or with the payload).
    const parts = i + 2 < segments.length ? 3 : 2;
    const jwt = [segment.slice(at), ...segments.slice(i + 1, i + parts)].join(".");
    out.push(segment.slice(0, at) + replace(jwt));
    i += parts;
  }
  return out.join(".");
}

/** `text` with every JWT-shaped string passed through `replace`. Linear in the length of `text`. */
export function replaceJwts(text: string, replace: (jwt: string) => string): string {
  return replaceRuns(text, isDottedRunChar, (run) => replaceJwtsInRun(run, replace));
}

/** Hide anything token-shaped in `text`. Linear in the length of `text`. */
export function scrub(text: string): string {
  const withoutJwts = replaceJwts(text, () => CENSOR);
  return replaceRuns(withoutJwts, isOpaqueChar, (run) => (run.length >= OPAQUE_MIN_LENGTH && looksRandom(run) ? CENSOR : run));
}

/**
 * A server's or program's words, fit to quote in a message: scrubbed as a whole, whitespace collapsed, then cut to
 * `max` characters with an ellipsis. Scrubbing before the cut means no token is ever partly shown.
 */
export function quote(text: string, max: number): string {
  const clean = scrub(text).replace(/\s+/g, " ").trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
