import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { readUpTo } from './read-range.js';

/**
 * Zip recipes: a zip package kept as the bytes that make it up rather than
 * as one file. Successive versions of a package share most of their
 * compressed entries byte for byte (only the names, which carry the version
 * folder, differ), so an image layer keeps each such entry once, in the
 * layer's entry store (`<layer root>/.zip-entries/<sha256 of the bytes>`), and
 * each zip as a recipe: its own bytes between the shared entries (local
 * headers, data descriptors, the central directory and end records) and
 * references to the shared ones, in order. Concatenated, they are the zip
 * byte for byte, so its signature verifies and its download is what it was.
 *
 * A recipe takes the zip's place under the zip's name: every path that names
 * the package (baked index, signature, layer state, deltas) stays as it is. A
 * reader tells the two apart by the first bytes: a zip starts with `PK`, a
 * recipe with RECIPE_MAGIC.
 *
 * Layout (numbers big-endian):
 *   magic "EPR-ZIP-RECIPE/1\n" | u64 zip size | 32 bytes sha256 of the zip | u32 segment count
 *   then per segment: u8 0 | u32 length | the bytes          (the zip's own bytes)
 *                  or u8 1 | u64 length | 32 bytes sha256   (an entry of the store)
 * The segments cover the zip exactly; nothing may follow the last one.
 *
 * An entry is named by its digest only (64 hex digits: no path can be
 * written), and it must be a regular file of the store with exactly the
 * length the recipe says; a recipe that fails any check is refused when its
 * package is loaded, like a broken zip.
 */

export const RECIPE_MAGIC = Buffer.from('EPR-ZIP-RECIPE/1\n');
/** The entry store's folder, in the layer root (scans skip dot folders, so it is never taken for a package). */
export const ENTRY_STORE = '.zip-entries';

const HEADER = RECIPE_MAGIC.length + 8 + 32 + 4;
/** a recipe holds one zip's headers: far below this */
const MAX_RECIPE_BYTES = 256 * 1024 * 1024;

export type RecipeSegment =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'entry'; digest: string; length: number };

export interface Recipe {
  /** the zip's size and sha256 (hex) */
  size: number;
  sha256: string;
  segments: RecipeSegment[];
}

export class RecipeError extends Error {}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  buf.writeUInt32BE(value % 2 ** 32, at + 4);
}

function readU64(buf: Buffer, at: number): number {
  const hi = buf.readUInt32BE(at);
  if (hi >= 2 ** 21) throw new RecipeError('a length past 2^53');
  return hi * 2 ** 32 + buf.readUInt32BE(at + 4);
}

export function encodeRecipe(r: Recipe): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(HEADER);
  RECIPE_MAGIC.copy(head, 0);
  writeU64(head, r.size, RECIPE_MAGIC.length);
  Buffer.from(r.sha256, 'hex').copy(head, RECIPE_MAGIC.length + 8);
  head.writeUInt32BE(r.segments.length, RECIPE_MAGIC.length + 40);
  parts.push(head);
  for (const s of r.segments) {
    if (s.kind === 'bytes') {
      const h = Buffer.alloc(5);
      h.writeUInt8(0, 0);
      h.writeUInt32BE(s.data.length, 1);
      parts.push(h, s.data);
    } else {
      const h = Buffer.alloc(41);
      h.writeUInt8(1, 0);
      writeU64(h, s.length, 1);
      Buffer.from(s.digest, 'hex').copy(h, 9);
      parts.push(h);
    }
  }
  return Buffer.concat(parts);
}

export function isRecipe(head: Buffer): boolean {
  return head.length >= RECIPE_MAGIC.length && head.subarray(0, RECIPE_MAGIC.length).equals(RECIPE_MAGIC);
}

/** The recipe in `buf`, checked for shape: its segments must add up to the zip's size exactly. */
export function decodeRecipe(buf: Buffer): Recipe {
  if (!isRecipe(buf)) throw new RecipeError('not a zip recipe');
  if (buf.length < HEADER) throw new RecipeError('truncated header');
  const size = readU64(buf, RECIPE_MAGIC.length);
  const sha256 = buf.subarray(RECIPE_MAGIC.length + 8, RECIPE_MAGIC.length + 40).toString('hex');
  const count = buf.readUInt32BE(RECIPE_MAGIC.length + 40);
  const segments: RecipeSegment[] = [];
  let at = HEADER;
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (at + 1 > buf.length) throw new RecipeError(`truncated at segment ${i}`);
    const kind = buf.readUInt8(at);
    if (kind === 0) {
      if (at + 5 > buf.length) throw new RecipeError(`truncated at segment ${i}`);
      const length = buf.readUInt32BE(at + 1);
      if (at + 5 + length > buf.length) throw new RecipeError(`truncated at segment ${i}`);
      segments.push({ kind: 'bytes', data: buf.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
      total += length;
    } else if (kind === 1) {
      if (at + 41 > buf.length) throw new RecipeError(`truncated at segment ${i}`);
      const length = readU64(buf, at + 1);
      segments.push({ kind: 'entry', digest: buf.subarray(at + 9, at + 41).toString('hex'), length });
      at += 41;
      total += length;
    } else {
      throw new RecipeError(`segment ${i} is of unknown kind ${kind}`);
    }
  }
  if (at !== buf.length) throw new RecipeError(`${buf.length - at} bytes after the last segment`);
  if (total !== size) throw new RecipeError(`segments make ${total} bytes, the zip has ${size}`);
  return { size, sha256, segments };
}

// ---------------------------------------------------------------------------

/** A zip's bytes as the server reads and sends them: a plain file, or rebuilt from a recipe. */
export interface ZipArchive {
  /** the file on disk: the zip, or its recipe */
  readonly file: string;
  readonly recipe: boolean;
  /** size of the zip */
  readonly size: number;
  /** the size and time the download is sent with (read at each call: a replaced file is seen) */
  stat(): Promise<{ size: number; mtime: Date }>;
  /** bytes [start, end] inclusive */
  createReadStream(start?: number, end?: number): Readable;
  /** `length` bytes at `position` (blocking; the builder reads zips this way) */
  readSync(position: number, length: number): Buffer;
  /** the zip, for yauzl */
  openYauzl(options: yauzl.Options): Promise<yauzl.ZipFile>;
  /** where bytes [start, start + length) are kept as they are in a file, when they are (the builder writes them from there) */
  locate(start: number, length: number): { file: string; offset: number } | undefined;
  /** where bytes [start, end] inclusive are, in order: slices of buffers held already, or ranges of files (a download is written from them without a stream) */
  pieces(start: number, end: number): BytePiece[];
}

/** Bytes where they are kept: `data` itself, or bytes [from, to) of `file` (a zip's, and the body of an answer written from them). */
export type BytePiece = { data: Buffer; file?: undefined } | { data?: undefined; file: string; from: number; to: number };

class PlainZip implements ZipArchive {
  readonly recipe = false;
  constructor(readonly file: string, readonly size: number) {}
  async stat() { const st = await fs.promises.stat(this.file); return { size: st.size, mtime: st.mtime }; }
  createReadStream(start = 0, end = this.size - 1): Readable { return fs.createReadStream(this.file, { start, end }); }
  readSync(position: number, length: number): Buffer { return readFileRange(this.file, position, length); }
  openYauzl(options: yauzl.Options): Promise<yauzl.ZipFile> {
    return new Promise((resolve, reject) => yauzl.open(this.file, options, (err, zip) => (err || !zip ? reject(err ?? new Error('unknown error')) : resolve(zip))));
  }
  locate(start: number): { file: string; offset: number } { return { file: this.file, offset: start }; }
  pieces(start: number, end: number): BytePiece[] { return end < start ? [] : [{ file: this.file, from: start, to: Math.min(end + 1, this.size) }]; }
}

function readFileRange(file: string, position: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const out = readUpTo(fd, length, position);
    if (out.length < length) throw new RecipeError(`${file} ended before ${position + length} bytes`);
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** A segment placed in the zip: where it starts, and where its bytes are (a buffer, or a store file). */
interface Placed { start: number; length: number; data?: Buffer; file?: string }

/** A zip rebuilt from its recipe and the entries of its layer's store. */
class RecipeZip implements ZipArchive {
  readonly recipe = true;
  readonly size: number;
  private constructor(readonly file: string, private readonly placed: Placed[], size: number) { this.size = size; }

  /** Checks every entry against the store (a regular file of exactly the recipe's length) before anything is read from it. */
  static open(file: string, recipe: Recipe, layerRoot: string): RecipeZip {
    const store = path.join(layerRoot, ENTRY_STORE);
    const name = path.basename(file);
    let st: fs.Stats;
    try { st = fs.lstatSync(store); } catch { st = undefined as unknown as fs.Stats; }
    if (recipe.segments.some((s) => s.kind === 'entry') && (!st || !st.isDirectory())) {
      throw new RecipeError(`zip recipe ${name}: the layer has no entry store (${ENTRY_STORE}/ folder)`);
    }
    const placed: Placed[] = [];
    let at = 0;
    for (const s of recipe.segments) {
      if (s.kind === 'bytes') {
        if (s.data.length > 0) placed.push({ start: at, length: s.data.length, data: s.data });
        at += s.data.length;
        continue;
      }
      const entry = path.join(store, s.digest);
      let es: fs.Stats;
      try { es = fs.lstatSync(entry); } catch { throw new RecipeError(`zip recipe ${name}: entry ${s.digest} is missing from the layer's entry store`); }
      if (!es.isFile()) throw new RecipeError(`zip recipe ${name}: entry ${s.digest} is not a regular file`);
      if (es.size !== s.length) throw new RecipeError(`zip recipe ${name}: entry ${s.digest} has ${es.size} bytes, the recipe says ${s.length}`);
      if (s.length > 0) placed.push({ start: at, length: s.length, file: entry });
      at += s.length;
    }
    return new RecipeZip(file, placed, recipe.size);
  }

  async stat() { const st = await fs.promises.stat(this.file); return { size: this.size, mtime: st.mtime }; }

  /** The first placed segment that holds byte `pos`. */
  private find(pos: number): number {
    let lo = 0;
    let hi = this.placed.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.placed[mid].start <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  /** The pieces of bytes [start, end) in order: slices of buffers, or ranges of store files. */
  private *slices(start: number, end: number): Generator<{ data?: Buffer; file?: string; from: number; to: number }> {
    if (start >= end) return;
    for (let i = this.find(start); i < this.placed.length; i++) {
      const p = this.placed[i];
      if (p.start >= end) return;
      const from = Math.max(start, p.start) - p.start;
      const to = Math.min(end, p.start + p.length) - p.start;
      if (to > from) yield { data: p.data, file: p.file, from, to };
    }
  }

  createReadStream(start = 0, end = this.size - 1): Readable {
    const pieces = [...this.slices(start, Math.min(end + 1, this.size))];
    async function* bytes(): AsyncGenerator<Buffer> {
      for (const p of pieces) {
        if (p.data) { yield p.data.subarray(p.from, p.to); continue; }
        let got = 0;
        for await (const c of fs.createReadStream(p.file!, { start: p.from, end: p.to - 1, highWaterMark: 256 * 1024 })) {
          got += (c as Buffer).length;
          yield c as Buffer;
        }
        // a store file cut short since the recipe was checked: a short answer is an error, never a wrong zip
        if (got !== p.to - p.from) throw new RecipeError(`entry ${path.basename(p.file!)} ended early`);
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  pieces(start: number, end: number): BytePiece[] {
    return [...this.slices(start, Math.min(end + 1, this.size))].map((p) => (p.data ? { data: p.data.subarray(p.from, p.to) } : { file: p.file!, from: p.from, to: p.to }));
  }

  readSync(position: number, length: number): Buffer {
    const out: Buffer[] = [];
    for (const p of this.slices(position, position + length)) out.push(p.data ? p.data.subarray(p.from, p.to) : readFileRange(p.file!, p.from, p.to - p.from));
    const buf = Buffer.concat(out);
    if (buf.length !== length) throw new RecipeError(`${this.file}: ${length} bytes at ${position} asked for, ${buf.length} there`);
    return buf;
  }

  openYauzl(options: yauzl.Options): Promise<yauzl.ZipFile> {
    const reader = new RecipeReader(this);
    return new Promise((resolve, reject) => yauzl.fromRandomAccessReader(reader, this.size, options, (err, zip) => (err || !zip ? reject(err ?? new Error('unknown error')) : resolve(zip))));
  }

  locate(start: number, length: number): { file: string; offset: number } | undefined {
    const [one, two] = [...this.slices(start, start + length)];
    return one && !two && one.file && one.to - one.from === length ? { file: one.file, offset: one.from } : undefined;
  }
}

/** yauzl reads a rebuilt zip through this, as it reads a file. */
class RecipeReader extends yauzl.RandomAccessReader {
  constructor(private readonly zip: RecipeZip) { super(); }
  override _readStreamForRange(start: number, end: number): Readable {
    return this.zip.createReadStream(start, end - 1);
  }
}

/**
 * The zip at `file`: the file itself, or (when it is a recipe) the zip its
 * recipe makes from the entry store of `layerRoot`, the package path it was
 * found in. A recipe is read only within its package path: without one it
 * is refused.
 */
export async function openZipArchive(file: string, layerRoot?: string): Promise<ZipArchive> {
  const fh = await fs.promises.open(file, 'r');
  let size: number;
  let head: Buffer;
  try {
    size = (await fh.stat()).size;
    head = Buffer.alloc(Math.min(size, RECIPE_MAGIC.length));
    if (head.length > 0) await fh.read(head, 0, head.length, 0);
    if (!isRecipe(head)) return new PlainZip(file, size);
    if (size > MAX_RECIPE_BYTES) throw new RecipeError(`zip recipe ${path.basename(file)}: ${size} bytes, too large for a recipe`);
    head = Buffer.alloc(size);
    await fh.read(head, 0, size, 0);
  } finally {
    await fh.close();
  }
  if (!layerRoot) throw new RecipeError(`zip recipe ${path.basename(file)}: read outside its package path`);
  let recipe: Recipe;
  try {
    recipe = decodeRecipe(head);
  } catch (err) {
    throw new RecipeError(`zip recipe ${path.basename(file)}: ${(err as Error).message}`);
  }
  return RecipeZip.open(file, recipe, layerRoot);
}

/** sha256 (hex) of all the zip's bytes, read through the archive (tests and checks). */
export async function archiveSha256(a: ZipArchive): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of a.createReadStream()) h.update(c as Buffer);
  return h.digest('hex');
}
