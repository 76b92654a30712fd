import fs from 'node:fs';
import type { Hash } from 'node:crypto';

/**
 * Deterministic tars written straight from their sources: the same entries
 * give the same bytes, whatever the timestamps, owners, umask or directory
 * order of the machine. Every header is ustar with fixed metadata (root,
 * 0644/0755, FIXED_MTIME); a name too long for ustar gets a pax `path`
 * record, a link target too long a pax `linkpath` record. Because the layout
 * is fixed, a tar's exact size is known before a byte is read, so a layer can
 * be streamed inside another tar (docker load) without being written to disk
 * first.
 *
 * A hard link (`link`) stands for a file written earlier in the same tar: the
 * engine unpacks it as another name of that file, so repeated content is
 * carried once. Its target is always a file entry that comes before it in the
 * same tar (writeTar refuses anything else): a link can never reach into
 * another layer, nor out of the tree the layer is unpacked into.
 */

export const FIXED_MTIME = new Date('2020-01-01T00:00:00Z');
const BLOCK = 512;
/** ustar's 11 octal digits of size */
const MAX_SIZE = 0o77777777777;

export type TarEntry =
  | { name: string; type: 'directory' }
  /** `offset`: the bytes are `size` bytes of `from` from there (a zip's entry kept in its layer's entry store) */
  | { name: string; type: 'file'; size: number; from: string; offset?: number }
  | { name: string; type: 'file'; size: number; data: Buffer }
  /** another name for the file entry `target`, written earlier in the same tar */
  | { name: string; type: 'link'; target: string };

export class TarError extends Error {}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** The name as written in the header (folders end with `/`). */
function headerName(e: TarEntry): string {
  return e.type === 'directory' ? `${e.name.replace(/\/$/, '')}/` : e.name;
}

/** [prefix, name] for ustar, or undefined when the name needs a pax record. */
function ustarSplit(name: string): [string, string] | undefined {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return ['', name];
  if (bytes > 256) return undefined;
  // the prefix ends at a `/` (not written); both halves must fit
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return [prefix, rest];
    if (Buffer.byteLength(rest) > 100) return undefined;
  }
  return undefined;
}

/** The length of a pax record, which counts its own digits. */
function paxRecordLength(key: string, value: string): number {
  const body = Buffer.byteLength(` ${key}=${value}\n`);
  let len = body + 1;
  while (String(len).length + body !== len) len = String(len).length + body;
  return len;
}

function paxRecord(key: string, value: string): Buffer {
  return Buffer.from(`${paxRecordLength(key, value)} ${key}=${value}\n`);
}

function octal(buf: Buffer, value: number, offset: number, width: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

type HeaderType = '0' | '1' | '5' | 'x';

function header(name: string, prefix: string, type: HeaderType, size: number, linkname = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, type === '5' ? 0o755 : 0o644, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, size, 124, 12);
  octal(h, Math.floor(FIXED_MTIME.getTime() / 1000), 136, 12);
  h.fill(' ', 148, 156);
  h.write(type, 156, 1, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  octal(h, 0, 329, 8);
  octal(h, 0, 337, 8);
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** The first bytes of `text` that fit in `max` bytes, without a broken character at the end. */
function truncated(text: string, max: number): string {
  return Buffer.from(text).subarray(0, max).toString('utf8').replace(/\uFFFD+$/, '');
}

const HEADER_TYPE: Record<TarEntry['type'], HeaderType> = { file: '0', link: '1', directory: '5' };

/** The header block(s) of one entry: a pax record first when the name or the link target needs one. */
export function entryHeader(e: TarEntry): Buffer {
  const name = headerName(e);
  const size = e.type === 'file' ? e.size : 0;
  if (size > MAX_SIZE) throw new TarError(`${e.name}: ${size} bytes is too large for a layer tar`);
  const type = HEADER_TYPE[e.type];
  const link = e.type === 'link' ? e.target : '';
  const split = ustarSplit(name);
  const linkFits = Buffer.byteLength(link) <= 100;
  if (split && linkFits) return header(split[1], split[0], type, size, link);
  const pax = Buffer.concat([...(split ? [] : [paxRecord('path', name)]), ...(linkFits ? [] : [paxRecord('linkpath', link)])]);
  const short = truncated(name, 99);
  const [ustarName, prefix] = split ? [split[1], split[0]] : [short, ''];
  return Buffer.concat([
    header(`PaxHeader/${short}`.slice(0, 99), '', 'x', pax.length), pax, Buffer.alloc(padded(pax.length) - pax.length),
    header(ustarName, prefix, type, size, linkFits ? link : truncated(link, 100)),
  ]);
}

/** entryHeader(e).length, without making the header (a layer has 100,000+ entries to size). */
export function entryHeaderSize(e: TarEntry): number {
  if (e.type === 'file' && e.size > MAX_SIZE) throw new TarError(`${e.name}: ${e.size} bytes is too large for a layer tar`);
  const name = headerName(e);
  const link = e.type === 'link' ? e.target : '';
  const split = ustarSplit(name) !== undefined;
  const linkFits = Buffer.byteLength(link) <= 100;
  if (split && linkFits) return BLOCK;
  const pax = (split ? 0 : paxRecordLength('path', name)) + (linkFits ? 0 : paxRecordLength('linkpath', link));
  return 2 * BLOCK + padded(pax);
}

/** The header of a file entry whose bytes the caller writes. */
export function fileHeader(name: string, size: number): Buffer {
  return entryHeader({ name, type: 'file', size, data: Buffer.alloc(0) });
}

/** The exact byte size of the tar of `entries` (with its two closing blocks). */
export function tarSize(entries: TarEntry[]): number {
  let total = 2 * BLOCK;
  for (const e of entries) total += entryHeaderSize(e) + (e.type === 'file' ? padded(e.size) : 0);
  return total;
}

/**
 * `entries` with each file whose content a file before it already has written
 * as a hard link to that first file, wherever the link takes no more bytes
 * than the file (a link whose target needs a pax record takes three blocks,
 * so a one-block file with a long target stays a file). `contentOf` names a
 * file's content (a digest), or is undefined for one that is never linked.
 */
export function linkRepeats(entries: TarEntry[], contentOf: (e: TarEntry & { type: 'file' }) => string | undefined): TarEntry[] {
  const first = new Map<string, string>();
  return entries.map((e) => {
    if (e.type !== 'file' || e.size === 0) return e;
    const content = contentOf(e);
    if (content === undefined) return e;
    const key = `${e.size}:${content}`;
    const target = first.get(key);
    if (target === undefined) {
      first.set(key, e.name);
      return e;
    }
    const link: TarEntry = { name: e.name, type: 'link', target };
    return entryHeaderSize(link) <= entryHeaderSize(e) + padded(e.size) ? link : e;
  });
}

const CHUNK = 1 << 20;

/**
 * Writes the tar of `entries` through `write` (which may wait, for back
 * pressure), feeding every byte to `hash`. A file whose size changed since it
 * was listed is an error: the tar's size was promised already. So is a link
 * whose target is not a file this tar wrote before it.
 */
export async function writeTar(entries: TarEntry[], write: (chunk: Buffer) => Promise<void>, hash?: Hash): Promise<void> {
  // small pieces (headers, small files) are gathered into chunks of about 1 MB
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const chunk = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await write(chunk);
  };
  const out = async (b: Buffer) => {
    hash?.update(b);
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes >= CHUNK) await flush();
  };
  const written = new Set<string>();
  for (const e of entries) {
    if (e.type === 'link' && !written.has(e.target)) throw new TarError(`${e.name}: a link to ${e.target}, which is not a file written before it in this tar`);
    await out(entryHeader(e));
    if (e.type !== 'file') continue;
    written.add(e.name);
    if ('data' in e) {
      if (e.data.length !== e.size) throw new TarError(`${e.name}: ${e.data.length} bytes, ${e.size} listed`);
      await out(e.data);
    } else {
      // blocking reads: for thousands of small files the promise machinery
      // costs several times the read itself (the writes stay asynchronous)
      const fd = fs.openSync(e.from, 'r');
      try {
        let done = 0;
        const at = e.offset ?? 0;
        while (done < e.size) {
          const chunk = Buffer.allocUnsafe(Math.min(CHUNK, e.size - done));
          const n = fs.readSync(fd, chunk, 0, chunk.length, at + done);
          if (n === 0) break;
          await out(n === chunk.length ? chunk : chunk.subarray(0, n));
          done += n;
        }
        const now = fs.fstatSync(fd).size;
        if (done !== e.size || (e.offset === undefined ? now !== e.size : now < at + e.size)) throw new TarError(`${e.from} changed while it was being packed (${e.size} bytes listed, now ${now})`);
      } finally {
        fs.closeSync(fd);
      }
    }
    const pad = padded(e.size) - e.size;
    if (pad > 0) await out(Buffer.alloc(pad));
  }
  await out(Buffer.alloc(2 * BLOCK));
  await flush();
}

/** Adds every parent folder of every entry and sorts by bytes, so parents come first. */
export function withParents(entries: string[]): string[] {
  const all = new Set<string>();
  for (const e of entries) {
    let p = e.replace(/^\/+|\/+$/g, '').replace(/\/{2,}/g, '/');
    // up to the first parent already present: its own parents are too
    while (p && !all.has(p)) {
      all.add(p);
      const i = p.lastIndexOf('/');
      p = i < 0 ? '' : p.slice(0, i);
    }
  }
  return [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
