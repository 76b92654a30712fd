import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { DirectorySource, relativePath, ZipSource, type PackageFile } from './source.js';
import { Package, PackageLoadError, type LoadOptions } from './package.js';
import { scanPackagePath } from './scan.js';
import { readUpTo } from './read-range.js';
import type { PackageFacts } from './manifest.js';
import type { JsonObject } from './fields.js';

/**
 * The baked index of one package path (a layer): everything /search,
 * /categories and package info need, and every package's file list, written
 * once at build time so that a server starts without walking and parsing
 * every package. It is used only while it still describes the layer: the
 * same package folders and zips, with the same manifest sizes and times.
 *
 * The file is in two parts, so that a start reads only what every request
 * needs. The first line names the format and the byte length of the head;
 * the head (one JSON document) holds each package's location, stamp, facts
 * and search entry, and where its details are; the details that follow are
 * one JSON document per package (its package info and file list), each read
 * from disk when the package is first asked for. Package info and file lists
 * are four fifths of the bytes, and parsing them all at start-up cost more
 * than the rest of the start (and their memory, for packages never asked for).
 */
export const BAKED_INDEX_FILE = '.epr-index';
const FORMAT = 'epr-baked-index/2';
/** the first line: `<format> <head length>` */
const FIRST_LINE = /^(epr-baked-index\/\d+) (\d+)$/;

/** A package as the builder's package cache and the baked index writer hold it: everything, in memory. */
export interface BakedPackage {
  /** relative to the layer root, `/`-separated */
  location: string;
  kind: 'directory' | 'zip';
  /** manifest.yml (directories) or the zip itself: size and mtime, to tell a stale index */
  stamp: string;
  facts: PackageFacts;
  summary: JsonObject;
  info: JsonObject;
  files?: Array<{ path: string; size: number }>;
  signature?: boolean;
}

/** A package in the head: its details are `details` = [offset, length] bytes into the details part. */
interface HeadEntry {
  location: string;
  kind: 'directory' | 'zip';
  stamp: string;
  facts: PackageFacts;
  summary: JsonObject;
  signature?: boolean;
  details: [number, number];
}

interface Details {
  info: JsonObject;
  /** directories: [path, size] of each file, in the walk's order */
  files?: Array<[string, number]>;
}

/** `time`: the modification time the file will have where the index is read (an image layer's fixed time). */
function stampOf(file: string, time?: Date): string {
  const st = fs.statSync(file);
  return stampText(st.size, time ?? new Date(st.mtimeMs));
}

/** A stamp from a size and time: for a file the builder writes in another form (a zip kept as its recipe). */
export function stampText(size: number, time: Date): string {
  return `${size}:${Math.floor(time.getTime())}`;
}

function stampFor(root: string, location: string, kind: 'directory' | 'zip', time?: Date): string {
  const abs = path.join(root, ...location.split('/'));
  return stampOf(kind === 'zip' ? abs : path.join(abs, 'manifest.yml'), time);
}


/** One package's entry in its layer's baked index (`stampTime`: see stampOf). */
export function bakedEntry(root: string, p: Package, stampTime?: Date): BakedPackage {
  const location = relativePath(root, p.source.location);
  return {
    location,
    kind: p.kind,
    stamp: stampFor(root, location, p.kind, stampTime),
    facts: p.facts,
    summary: p.summary,
    info: p.info,
    files: p.kind === 'directory' ? p.source.files().map((f) => ({ path: f.path, size: f.size })) : undefined,
    signature: p.signatureFile !== undefined,
  };
}

/** The bytes of a baked index, for packages loaded (and validated) already. */
export function bakedIndexBytes(entries: BakedPackage[]): Buffer {
  const details: Buffer[] = [];
  let offset = 0;
  const head: HeadEntry[] = entries.map((e) => {
    const d: Details = { info: e.info, files: e.files?.map((f) => [f.path, f.size]) };
    const bytes = Buffer.from(`${JSON.stringify(d)}\n`);
    details.push(bytes);
    const at: [number, number] = [offset, bytes.length];
    offset += bytes.length;
    return { location: e.location, kind: e.kind, stamp: e.stamp, facts: e.facts, summary: e.summary, signature: e.signature, details: at };
  });
  const headBytes = Buffer.from(`${JSON.stringify({ packages: head })}\n`);
  return Buffer.concat([Buffer.from(`${FORMAT} ${headBytes.length}\n`), headBytes, ...details]);
}

/** Writes the baked index of a layer whose packages were loaded (and validated) already. */
export function writeBakedIndex(root: string, packages: Package[]): string {
  const file = path.join(root, BAKED_INDEX_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bakedIndexBytes(packages.map((p) => bakedEntry(root, p))));
  fs.renameSync(tmp, file);
  return file;
}

/** The package a baked entry describes, without reading its manifests (a zip's entry list is read). */
export function packageFromBaked(root: string, b: BakedPackage): Promise<Package> {
  return packageAt(root, b, b.info, (b.files ?? []).map((f): PackageFile => ({ path: f.path, size: f.size })));
}

/** The package at `e.location` of `root` with these documents; `info` and `files` may say how to read them later. */
async function packageAt(
  root: string,
  e: Pick<BakedPackage, 'location' | 'kind' | 'facts' | 'summary' | 'signature'>,
  info: JsonObject | (() => JsonObject),
  files: PackageFile[] | (() => PackageFile[]),
): Promise<Package> {
  const abs = path.join(root, ...e.location.split('/'));
  const version = semver.parse(e.facts.version);
  if (!version) throw new Error(`invalid version ${e.facts.version}`);
  const source = e.kind === 'zip' ? await ZipSource.open(abs, root) : new DirectorySource(abs, files);
  return new Package(source, e.facts, version, e.summary, info, e.signature ? `${abs}.sig` : undefined);
}

export type BakedResult =
  | { ok: true; packages: Package[] }
  | { ok: false; reason: string };

/** `length` bytes of `fd` from `position`, all of them. */
function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = readUpTo(fd, length, position);
  if (buf.length < length) throw new Error('the file ends early');
  return buf;
}

/** `length` bytes from `position` of a baked index */
type ReadAt = (length: number, position: number) => Buffer;

/** The head of a baked index of `size` bytes, and where its details begin; a string says why it cannot be used. */
function headOf(size: number, readAt: ReadAt): { packages: HeadEntry[]; detailsAt: number } | string {
  const start = readAt(Math.min(size, 64), 0);
  const eol = start.indexOf(10);
  const first = FIRST_LINE.exec(start.toString('latin1', 0, eol < 0 ? start.length : eol));
  if (!first) return `unreadable baked index: its first line is not "${FORMAT} <head length>"`;
  if (first[1] !== FORMAT) return `baked index format is ${first[1]}, not ${FORMAT}`;
  const detailsAt = eol + 1 + Number(first[2]);
  if (detailsAt > size) return 'unreadable baked index: the file ends inside its head';
  const head = JSON.parse(readAt(detailsAt - eol - 1, eol + 1).toString('utf8')) as { packages?: HeadEntry[] };
  if (!Array.isArray(head.packages)) return 'unreadable baked index: its head lists no packages';
  for (const p of head.packages) {
    const [offset, length] = Array.isArray(p.details) ? p.details : [NaN, NaN];
    if (!(offset >= 0 && length > 0 && detailsAt + offset + length <= size)) return `unreadable baked index: the details of ${p.location} are not in the file`;
  }
  return { packages: head.packages, detailsAt };
}

function readHead(file: string): { packages: HeadEntry[]; detailsAt: number; identity: string } | string {
  let fd: number | undefined;
  try {
    const opened = fd = fs.openSync(file, 'r');
    const st = fs.fstatSync(opened);
    const head = headOf(st.size, (length, position) => readExactly(opened, length, position));
    return typeof head === 'string' ? head : { ...head, identity: identity(st) };
  } catch (err) {
    return `unreadable baked index: ${(err as Error).message}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The packages a baked index's bytes list (location, stamp, facts, search entry), as a reader of the index sees them first. */
export function bakedIndexHead(bytes: Buffer): Array<Omit<HeadEntry, 'details'>> {
  const head = headOf(bytes.length, (length, position) => bytes.subarray(position, position + length));
  if (typeof head === 'string') throw new Error(head);
  return head.packages;
}

/** What tells the index file read at start from another written over it since (bake.js replaces the file). */
function identity(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * How a package's details are read when first asked for (once: info and file
 * list come together), from the very file the head was read from: if another
 * was written in its place since, the offsets are not its own, and the read
 * fails rather than answer with another package's details.
 */
function detailsOf(file: string, fileIdentity: string, at: number, entry: HeadEntry): () => Details {
  let details: Details | undefined;
  return () => {
    if (details) return details;
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, 'r');
      if (identity(fs.fstatSync(fd)) !== fileIdentity) throw new Error('the index was written again since the server started (restart it to serve the new one)');
      const d = JSON.parse(readExactly(fd, entry.details[1], at + entry.details[0]).toString('utf8')) as Details;
      if (d?.info?.name !== entry.facts.name || d.info.version !== entry.facts.version) throw new Error('they are not this package\'s');
      details = d;
    } catch (err) {
      throw new Error(`baked index ${file}: the details of ${entry.location} cannot be read: ${(err as Error).message}`);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    return details;
  };
}

/** The package a head entry describes; its info and file list are read when first asked for. */
function packageFromHead(root: string, file: string, fileIdentity: string, detailsAt: number, e: HeadEntry): Promise<Package> {
  const details = detailsOf(file, fileIdentity, detailsAt, e);
  return packageAt(root, e, () => details().info, () => (details().files ?? []).map(([p, size]): PackageFile => ({ path: p, size })));
}

/** Reads a layer's baked index; says why when it is missing or no longer matches the layer. */
export async function readBakedIndex(root: string, _opts: LoadOptions): Promise<BakedResult> {
  const file = path.join(root, BAKED_INDEX_FILE);
  if (!fs.existsSync(file)) return { ok: false, reason: 'no baked index' };
  const baked = readHead(file);
  if (typeof baked === 'string') return { ok: false, reason: baked };

  const found = scanPackagePath(root);
  const present = new Map<string, 'directory' | 'zip'>([
    ...found.zips.map((z) => [relativePath(root, z), 'zip'] as const),
    ...found.directories.map((d) => [relativePath(root, d), 'directory'] as const),
  ]);
  if (present.size !== baked.packages.length) return { ok: false, reason: `stale baked index: ${baked.packages.length} packages baked, ${present.size} present` };
  for (const b of baked.packages) {
    if (present.get(b.location) !== b.kind) return { ok: false, reason: `stale baked index: ${b.location} is not in the layer` };
    if (stampFor(root, b.location, b.kind) !== b.stamp) return { ok: false, reason: `stale baked index: ${b.location} changed` };
  }

  const packages: Package[] = [];
  for (const b of baked.packages) {
    try {
      packages.push(await packageFromHead(root, file, baked.identity, baked.detailsAt, b));
    } catch (err) {
      if (err instanceof PackageLoadError) throw err;
      return { ok: false, reason: `baked index: ${b.location}: ${(err as Error).message}` };
    }
  }
  return { ok: true, packages };
}
