import type http from 'node:http';
import { cleanPath } from '../packages/go-path.js';

/**
 * EPR's router cleans every request path before routing it: a path with an
 * empty (`//`), `.` or `..` segment is answered `301 Moved Permanently` to
 * the cleaned path, with the query string as it came. Real manifests carry
 * icon `src` values such as `/img//logo.png` and Kibana requests them as
 * written, so this is how they reach the file. The check is on the
 * percent-decoded path (`%2e%2e` is `..`, `%2F` a slash), as Go's is, and
 * `..` never climbs above `/`: a cleaned path cannot leave the package it
 * names any more than any other URL can.
 */

/** Where an unclean request target is sent, or undefined when it is clean (or not a path: `*`, absolute-form, bad escapes). */
export function cleanPathRedirect(rawUrl: string): string | undefined {
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (rawPath.charCodeAt(0) !== 47) return undefined;
  // the common case, decided without decoding: no `//`, no dot segment, no escape that could hide one
  if (!rawPath.includes('//') && !rawPath.includes('/.') && !rawPath.includes('%')) return undefined;
  const decoded = unescapePath(rawPath);
  // undefined: malformed escapes, left to the routes' own 400s
  if (decoded === undefined) return undefined;
  const cleaned = routerClean(decoded);
  if (cleaned === decoded) return undefined;
  return escapePath(cleaned) + (q < 0 ? '' : rawUrl.slice(q));
}

/** Go's path.Clean, keeping a trailing slash (gorilla/mux's rule: `/package/n/1.0.0/./` is `/package/n/1.0.0/`). */
export function routerClean(p: string): string {
  const cleaned = cleanPath(p.charCodeAt(0) === 47 ? p : `/${p}`);
  return p.endsWith('/') && cleaned !== '/' ? `${cleaned}/` : cleaned;
}

/**
 * The answer to an unclean path: only the status and `Location` (Go adds
 * `Content-Length: 0` to a GET, as Node does), no body, no CORS or caching
 * headers: EPR sends it before any route is matched.
 */
export function redirectUncleanPath(req: http.IncomingMessage, res: http.ServerResponse, next: () => void): void {
  const location = req.url === undefined ? undefined : cleanPathRedirect(req.url);
  if (location === undefined) { next(); return; }
  // not writeHead: headers written at end() let Node know the body is empty (Content-Length: 0, as Go sends)
  res.statusCode = 301;
  res.setHeader('Location', location);
  res.end();
}

/** Percent-decoding as Go's url package does for a path: bytes (as a latin1 string), `+` left alone, a bad escape is an error. */
function unescapePath(raw: string): string | undefined {
  if (!raw.includes('%')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '%') { out += c; continue; }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    out += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  return out;
}

/** Bytes a Go URL path keeps as they are; every other byte becomes %XX (upper-case hex). */
const PATH_SAFE = /^[A-Za-z0-9\-_.~$&+,/:;=@]$/;

function escapePath(bytes: string): string {
  let out = '';
  for (const b of Buffer.from(bytes, 'latin1')) {
    const c = String.fromCharCode(b);
    out += PATH_SAFE.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
