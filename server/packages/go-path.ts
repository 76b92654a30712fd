/**
 * Go's `path.Clean` and `path.Join`, byte for byte: EPR builds its URLs with
 * them and its router cleans request paths with them, so the same answers
 * need the same rule here (Node's path.posix keeps trailing slashes and
 * differs on empty input).
 */

/**
 * The shortest path equal to `p`: no empty or `.` segments, each `..` removes
 * the segment before it, a `..` at the start of a rooted path is dropped (it
 * never climbs above `/`), no trailing slash; `.` for an empty result.
 */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.charCodeAt(0) === 47;
  const out: string[] = [];
  let leadingDotDots = 0; // `..` kept at the start of a relative path, which nothing can remove
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > leadingDotDots) out.pop();
      else if (!rooted) { out.push('..'); leadingDotDots++; }
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** The elements joined with `/` and cleaned; empty elements are ignored, all empty gives ''. */
export function joinPath(...elems: string[]): string {
  const parts = elems.filter((e) => e !== '');
  return parts.length === 0 ? '' : cleanPath(parts.join('/'));
}
