import { HttpError } from './errors.js';
import { isStrictSemver } from '../packages/versions.js';

export const NAME_RE = /^[a-z0-9_]+$/;

/** Splits a raw URL path into decoded segments; anything that could walk out of a folder is a 400. */
export function decodeSegments(rawPath: string): string[] {
  return rawPath.split('/').map((seg) => {
    let s: string;
    try { s = decodeURIComponent(seg); } catch { throw HttpError.of('invalidPath'); }
    if (s.includes('/') || s.includes('\\') || s.includes('\0') || s === '..' || s === '.') throw HttpError.of('invalidPath');
    return s;
  });
}

/** A version taken from a URL: percent-decoded, then strict semver, else 400. */
export function versionFromUrl(raw: string): string {
  let v: string;
  try { v = decodeURIComponent(raw); } catch { throw HttpError.of('invalidPackageVersion'); }
  return requireVersion(v);
}

export function requireVersion(v: string): string {
  if (!isStrictSemver(v)) throw HttpError.of('invalidPackageVersion');
  return v;
}
