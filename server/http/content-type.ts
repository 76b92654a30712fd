import path from 'node:path';

/** Content types by file extension, with EPR's exact spellings for YAML and Markdown. */
const BY_EXTENSION: Record<string, string> = {
  '.yml': 'text/yaml; charset=UTF-8',
  '.yaml': 'text/yaml; charset=UTF-8',
  '.md': 'text/markdown; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.xml': 'text/xml; charset=utf-8',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.sig': 'application/octet-stream',
};

/** The type for a file; unknown extensions are sniffed from the first bytes: text or binary. */
export function contentTypeFor(file: string, head?: Buffer): string {
  const known = BY_EXTENSION[path.extname(file).toLowerCase()];
  if (known) return known;
  if (head && looksLikeText(head)) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

function looksLikeText(buf: Buffer): boolean {
  const n = Math.min(buf.length, 512);
  for (let i = 0; i < n; i++) {
    const b = buf[i];
    if (b === 0) return false;
    if (b < 0x09 || (b > 0x0d && b < 0x20 && b !== 0x1b)) return false;
  }
  return true;
}
