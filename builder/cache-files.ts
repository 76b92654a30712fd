import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The builder cache's files: each written whole or not at all, and one
 * pruning rule: in each of its folders, only the most recently used entries
 * stay (extracted git trees, package caches of layer folders, layer states).
 * Use is marked by the entry's modification time.
 */

/** Writes a cache file whole (a temporary file renamed over it); says why when it could not, which only costs time. */
export function writeCacheFile(file: string, body: string | Buffer): string | undefined {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, file);
    return undefined;
  } catch (err) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* never written */ }
    return (err as Error).message;
  }
}

/** Marks a cache entry as just used; a read-only cache is left as it is. */
export function markUsed(file: string): void {
  try {
    const now = new Date();
    fs.utimesSync(file, now, now);
  } catch { /* read-only or gone: it only ages sooner */ }
}

/** Keeps the `keep` most recently used files of `dir` ending in `suffix`; `drop` removes an older one (default: the file). */
export function keepRecent(dir: string, suffix: string, keep: number, drop: (file: string) => void = (f) => fs.rmSync(f, { force: true })): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(suffix));
  } catch {
    return;
  }
  if (names.length <= keep) return;
  const aged = names.map((n) => {
    try { return { n, t: fs.statSync(path.join(dir, n)).mtimeMs }; } catch { return { n, t: 0 }; }
  }).sort((a, b) => b.t - a.t);
  for (const { n } of aged.slice(keep)) {
    try { drop(path.join(dir, n)); } catch { /* another build removed it */ }
  }
}
