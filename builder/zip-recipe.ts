import crypto from 'node:crypto';
import fs from 'node:fs';
import type { BakedPackage } from '../server/packages/baked.js';
import { stampText } from '../server/packages/baked.js';
import type { Package } from '../server/packages/package.js';
import { relativePath, ZipSource } from '../server/packages/source.js';
import { directoryRecords, LOCAL_HEADER_LENGTH, localDataStart, readEndRecord } from '../server/packages/zip-directory.js';
import { decodeRecipe, encodeRecipe, ENTRY_STORE, type RecipeSegment, type ZipArchive } from '../server/packages/zip-recipe.js';
import { FIXED_MTIME, type TarEntry } from './tar.js';

/**
 * Zip packages in a layer tar as recipes (the format and how the server
 * reads them: server/packages/zip-recipe.ts). Each zip's compressed entries
 * go once into the layer's entry store, `<layer>/.zip-entries/<sha256>`, and
 * the zip itself becomes its recipe under its own name.
 *
 * A zip's recipe is a function of that zip's bytes alone (never of the other
 * zips of the layer), so a layer's key still follows from its packages' bytes
 * and a delta can leave out every unchanged zip: its recipe in the base is the
 * one this build would write.
 */

/**
 * Entries shorter than this stay in the recipe: in the store each costs a tar
 * header and the padding to 512 bytes. On the 2,400-version corpus's
 * production zips (95.0 MB as a tar) recipes and store take 20.5 MB with 256,
 * 21.1 MB with 1024, 22.4 MB with 4096; below 256 nothing more is saved.
 */
export const MIN_STORED_ENTRY = 256;

/**
 * How zips become recipes: part of the layer format (merge.ts) and of the
 * layer state a delta trusts its base by (delta.ts), so that any change to
 * how recipes are made never reuses a layer, nor puts a delta on a base,
 * made the old way.
 */
export const RECIPE_RULE = `zip-recipe/1,min-${MIN_STORED_ENTRY}`;

/** An entry of the store: its bytes where they are in a file, or read (a zip that is a recipe already). */
export interface StoredEntry { digest: string; length: number; from?: { file: string; offset: number }; data?: Buffer }

export interface BuiltRecipe {
  /** the encoded recipe */
  recipe: Buffer;
  /** the store entries it references, each once */
  entries: StoredEntry[];
  /** the zip's size and sha256 (hex) */
  size: number;
  sha256: string;
}

/** Where each entry's compressed bytes lie, as the central directory says; none when it cannot be read (then nothing is shared, and the bytes are still exact). */
export function entryRanges(a: ZipArchive): Array<{ start: number; length: number }> {
  try {
    return readRanges(a);
  } catch {
    return [];
  }
}

function readRanges(a: ZipArchive): Array<{ start: number; length: number }> {
  const end = readEndRecord(a);
  if (!end || end.directoryOffset + end.directorySize > a.size) return [];
  const cd = a.readSync(end.directoryOffset, end.directorySize);
  const out: Array<{ start: number; length: number }> = [];
  // as many records as can be read: the entries of a directory cut short are still worth storing
  for (const r of directoryRecords(cd, end.entries)) {
    if (r.localHeader + LOCAL_HEADER_LENGTH > a.size) continue;
    const start = localDataStart(a, r.localHeader);
    if (start !== undefined && r.compressedSize > 0 && start + r.compressedSize <= a.size) out.push({ start, length: r.compressedSize });
  }
  return out;
}

/** The recipe of the zip `a`: its entries of MIN_STORED_ENTRY bytes or more referenced, everything else kept in it. */
export function makeRecipe(a: ZipArchive): BuiltRecipe {
  const ranges = entryRanges(a).filter((r) => r.length >= MIN_STORED_ENTRY).sort((x, y) => x.start - y.start);
  const whole = crypto.createHash('sha256');
  const segments: RecipeSegment[] = [];
  const entries = new Map<string, StoredEntry>();
  let at = 0;
  const literal = (end: number) => {
    // read in pieces: a zip's own bytes between entries are headers, but a zip may also hold small entries only
    const parts: Buffer[] = [];
    while (at < end) {
      const b = a.readSync(at, Math.min(end - at, 4 << 20));
      whole.update(b);
      parts.push(b);
      at += b.length;
    }
    if (parts.length > 0) segments.push({ kind: 'bytes', data: Buffer.concat(parts) });
  };
  for (const r of ranges) {
    if (r.start < at) continue; // overlapping entries (a zip bomb's trick): the later stays in the recipe
    literal(r.start);
    const bytes = a.readSync(r.start, r.length);
    whole.update(bytes);
    const digest = crypto.createHash('sha256').update(bytes).digest('hex');
    segments.push({ kind: 'entry', digest, length: r.length });
    if (!entries.has(digest)) {
      const from = a.locate(r.start, r.length);
      entries.set(digest, { digest, length: r.length, ...(from ? { from } : { data: bytes }) });
    }
    at += r.length;
  }
  literal(a.size);
  const sha256 = whole.digest('hex');
  const recipe = encodeRecipe({ size: a.size, sha256, segments });
  // the recipe read back must say what was written: the same size, the same entries
  const back = decodeRecipe(recipe);
  if (back.size !== a.size || back.segments.length !== segments.length) throw new Error(`${a.file}: its recipe does not read back`);
  return { recipe, entries: [...entries.values()], size: a.size, sha256 };
}

const memo = new Map<string, BuiltRecipe>();
const MEMO_MAX = 8192;

/** makeRecipe, once per zip file as it is now (a build asks for the full layer and for a delta). */
function recipeOf(a: ZipArchive): BuiltRecipe {
  const st = fs.statSync(a.file);
  const key = `${a.file}\0${st.size}\0${st.mtimeMs}\0${st.ino}`;
  let r = memo.get(key);
  if (!r) {
    r = makeRecipe(a);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(key, r);
  }
  return r;
}

export interface LayerRecipes {
  /** tar name of a zip -> the recipe written there instead */
  recipes: Map<string, Buffer>;
  /** tar name in the entry store -> its entry */
  store: Map<string, TarEntry>;
}

/** The recipe a package's zip goes into a layer as; undefined for folders and for zips kept whole (no entry worth storing). */
function recipeFor(p: Package): BuiltRecipe | undefined {
  if (!(p.source instanceof ZipSource)) return undefined;
  const r = recipeOf(p.source.archive);
  return r.entries.length > 0 ? r : undefined;
}

/** A package's baked entry as the image holds it: a zip kept as its recipe is stamped with the recipe's size. */
export function bakedAsStored(p: Package, e: BakedPackage): BakedPackage {
  const r = e.kind === 'zip' ? recipeFor(p) : undefined;
  return r ? { ...e, stamp: stampText(r.recipe.length, FIXED_MTIME) } : e;
}

/**
 * The recipes and the entry store of one layer tar whose packages live under
 * `top` (the layer's root in the image, holding `layerDir`'s packages). A zip
 * with no entry worth storing stays a zip. With `sent` (a delta), only the
 * recipes of the zips it sends are written, and only the entries no zip it
 * does not send uses: the base holds those already, with the same recipes.
 */
export function layerRecipes(layerDir: string, top: string, keep: Array<{ pkg: Package }>, sent?: (p: Package) => boolean): LayerRecipes {
  const recipes = new Map<string, Buffer>();
  const needed = new Map<string, StoredEntry>();
  const held = new Set<string>();
  for (const { pkg } of keep) {
    const r = recipeFor(pkg);
    if (!r) continue;
    const rel = relativePath(layerDir, pkg.source.location);
    if (sent && !sent(pkg)) {
      for (const e of r.entries) held.add(e.digest);
      continue;
    }
    recipes.set(`${top}/${rel}`, r.recipe);
    for (const e of r.entries) needed.set(e.digest, e);
  }
  const store = new Map<string, TarEntry>();
  for (const e of needed.values()) {
    if (held.has(e.digest)) continue;
    const name = `${top}/${ENTRY_STORE}/${e.digest}`;
    store.set(name, e.from
      ? { name, type: 'file', size: e.length, from: e.from.file, offset: e.from.offset }
      : { name, type: 'file', size: e.length, data: e.data! });
  }
  return { recipes, store };
}
