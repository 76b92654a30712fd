import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { inspectImage } from '../image.js';
import { fileHeader } from '../tar.js';
import { ArchiveWriter, containerdHeldBlobs, containerdName, diffIdChains, heldChains, layoutFiles, type EngineStoreKind } from './engine.js';
import { digestHex, imageFromManifest, isDigest, MEDIA_TYPES, REF_NAME_ANNOTATION, sha256Digest, type BlobSource, type Descriptor, type OciImage } from './model.js';
import { formatReference, parseReference, ReferenceError, type ImageReference } from './reference.js';
import { blobExists, choosePlatform, getManifest, type RegistryOptions } from './registry.js';
import type { OciStore } from './store.js';

/**
 * The bundle target: one tar that is at once an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/sha256/...`: what `ctr images import`,
 * `skopeo copy oci-archive:` and the containerd image store read) and a
 * docker archive (`manifest.json` whose paths point into the same blobs:
 * what the classic `docker load` and `podman load` read). Every blob is
 * stored once, however many images name it.
 *
 * An incremental bundle (`--since`) carries every manifest and config but
 * only the layer blobs the site does not hold yet. It says so in two places:
 * an annotation on index.json (any OCI reader sees it) and `epr-bundle.json`,
 * which lists each blob left out with the images that need it and where the
 * site got it (the earlier bundle or image), so that a loader can name what
 * is missing instead of letting `docker load` fail on a file not found.
 */

export const BUNDLE_FILE = 'epr-bundle.json';
/** on index.json: the digests of the layer blobs an incremental bundle left out, comma-separated */
export const LEFT_OUT_ANNOTATION = 'org.elastic.package-registry.bundle.left-out';
/** on index.json: what the site must already hold (the --since sources), comma-separated */
export const SINCE_ANNOTATION = 'org.elastic.package-registry.bundle.since';

export class BundleError extends Error {}
/** The tar is no bundle (no OCI layout in it); `dockerArchive` when it is a plain `docker save` of an older engine. */
export class NotABundleError extends BundleError {
  constructor(message: string, readonly dockerArchive: boolean) { super(message); }
}

/** An image as a site held it when a bundle was made: what a later loader checks the site against. */
export interface SinceImage {
  name: string;
  /** the manifest digest (the image ID on a containerd store engine) */
  manifest: string;
  layers: Array<{ digest: string; diffId?: string; size: number }>;
}

/** What `--since` names: the blobs the site holds, and the images they came with. */
export interface SinceSet {
  /** as the user wrote it: a bundle file or an image reference */
  source: string;
  /** where its layers were read */
  from: 'bundle' | 'store' | 'engine' | 'registry';
  /** blob digests the site holds */
  digests: Set<string>;
  images: SinceImage[];
}

/** A layer blob a bundle does not carry, since the site holds it. */
export interface LeftOutBlob {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
  /** the tags of the bundle's images that have this layer */
  images: string[];
  /** the --since sources it came with */
  from: string[];
}

export interface BundleReport {
  file: string;
  /** the size of the tar written */
  bytes: number;
  images: number;
  tags: string[];
  incremental: boolean;
  blobsWritten: number;
  /** blob bytes inside (configs, manifests, layers) */
  bytesWritten: number;
  blobsLeftOut: number;
  bytesLeftOut: number;
  /** the size the full bundle of the same images would have */
  fullBytes: number;
}

/** epr-bundle.json */
interface BundleFile {
  schemaVersion: 1;
  kind: 'full' | 'incremental';
  images: Array<{ tags: string[]; manifest: string; config: string; layers: number }>;
  /** every blob of the images, inside or not */
  full: { blobs: number; bytes: number };
  inside: { blobs: number; bytes: number };
  leftOut: LeftOutBlob[];
  since: Array<{ source: string; from: SinceSet['from']; images: SinceImage[] }>;
}

export interface WriteBundleOptions {
  /** layer blob digests the site holds: not written */
  exclude?: Set<string>;
  /** the --since sets `exclude` came from (their digests are excluded too): recorded so a loader can say where a missing blob was expected from */
  since?: SinceSet[];
  onProgress?(line: string): void;
}

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
const entryBytes = (name: string, size: number) => fileHeader(name, size).length + padded(size);
const blobPath = (digest: string) => `blobs/sha256/${digestHex(digest)}`;
/** 12.3 kB, 45.6 MB, 7.8 GB */
export function formatBytes(n: number): string {
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}
const mb = formatBytes;

/** A tag as Docker prints it (`x:1` for docker.io/library/x:1); refuses what is no image reference. */
function normalTag(tag: string): string {
  const r = parseReference(tag);
  return formatReference({ ...r, tag: r.tag ?? 'latest', digest: undefined });
}

// ------------------------------------------------------------------ writing

/**
 * Writes the images and their tags into one bundle `file`: to a temporary
 * file next to it, renamed over it at the end, so there is never a partial
 * bundle. A tag named for two images goes to the last one. Layers in
 * `exclude` (and in the `since` sets) are left out and listed.
 */
export async function writeBundle(
  file: string,
  images: Array<{ image: OciImage; tags: string[] }>,
  source: BlobSource,
  opts: WriteBundleOptions = {},
): Promise<BundleReport> {
  if (!images.length) throw new BundleError('a bundle needs at least one image');
  const exclude = new Set(opts.exclude ?? []);
  for (const s of opts.since ?? []) for (const d of s.digests) exclude.add(d);

  // a tag belongs to the last image that names it; images left with no tag still go in (by digest)
  const owner = new Map<string, number>();
  images.forEach(({ tags }, i) => { for (const t of tags) owner.set(normalTag(t), i); });
  const byManifest = new Map<string, { image: OciImage; tags: string[] }>();
  images.forEach(({ image }, i) => {
    const e = byManifest.get(image.manifestDescriptor.digest) ?? { image, tags: [] };
    for (const [t, o] of owner) if (o === i && !e.tags.includes(t)) e.tags.push(t);
    byManifest.set(image.manifestDescriptor.digest, e);
  });
  const entries = [...byManifest.values()];

  // every blob once: configs and manifests always, layers unless the site holds them
  const blobs = new Map<string, Descriptor & { kind: 'config' | 'manifest' | 'layer'; bytes?: Buffer }>();
  const leftOut = new Map<string, LeftOutBlob>();
  const sinceOf = (digest: string) => (opts.since ?? []).filter((s) => s.digests.has(digest)).map((s) => s.source);
  for (const { image, tags } of entries) {
    for (const [bytes, d] of [[image.config, image.configDescriptor], [image.manifest, image.manifestDescriptor]] as const) {
      if (sha256Digest(bytes) !== d.digest) throw new BundleError(`${tags[0] ?? image.manifestDescriptor.digest}: its ${d === image.configDescriptor ? 'config' : 'manifest'} bytes are ${sha256Digest(bytes)}, not ${d.digest}`);
    }
    // the image holds its config and manifest bytes: written from there, not read back
    blobs.set(image.configDescriptor.digest, { ...image.configDescriptor, size: image.config.length, kind: 'config', bytes: image.config });
    blobs.set(image.manifestDescriptor.digest, { ...image.manifestDescriptor, size: image.manifest.length, kind: 'manifest', bytes: image.manifest });
    for (const l of image.layers) {
      if (exclude.has(l.digest)) {
        const lo = leftOut.get(l.digest) ?? { digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: l.diffId, images: [], from: sinceOf(l.digest) };
        for (const t of tags.length ? tags : [image.manifestDescriptor.digest]) if (!lo.images.includes(t)) lo.images.push(t);
        leftOut.set(l.digest, lo);
      } else if (!blobs.has(l.digest)) {
        blobs.set(l.digest, { mediaType: l.mediaType, digest: l.digest, size: l.size, kind: 'layer' });
      }
    }
  }
  for (const b of blobs.values()) {
    if (b.kind === 'layer' && !source.has(b.digest)) {
      const who = entries.find((e) => e.image.layers.some((l) => l.digest === b.digest))!;
      throw new BundleError(`layer ${b.digest} of ${who.tags[0] ?? who.image.manifestDescriptor.digest} is not in the builder's store: build the image again`);
    }
  }

  const incremental = leftOut.size > 0;
  const sum = (xs: Iterable<{ size: number }>) => [...xs].reduce((n, x) => n + x.size, 0);
  const meta: BundleFile = {
    schemaVersion: 1,
    kind: incremental ? 'incremental' : 'full',
    images: entries.map(({ image, tags }) => ({ tags, manifest: image.manifestDescriptor.digest, config: image.configDescriptor.digest, layers: image.layers.length })),
    full: { blobs: blobs.size + leftOut.size, bytes: sum(blobs.values()) + sum(leftOut.values()) },
    inside: { blobs: blobs.size, bytes: sum(blobs.values()) },
    leftOut: [...leftOut.values()],
    since: incremental ? (opts.since ?? []).map((s) => ({ source: s.source, from: s.from, images: s.images })) : [],
  };
  const files = layoutFiles(entries, {
    indexAnnotations: incremental
      ? { [LEFT_OUT_ANNOTATION]: [...leftOut.keys()].join(','), ...(opts.since?.length ? { [SINCE_ANNOTATION]: opts.since.map((s) => s.source).join(',') } : {}) }
      : {},
  });
  const metaBytes = Buffer.from(`${JSON.stringify(meta, null, 1)}\n`);
  const small: Array<[string, Buffer]> = [['oci-layout', files.ociLayout], ['index.json', files.index], ['manifest.json', files.manifestJson], [BUNDLE_FILE, metaBytes]];
  const smallBytes = small.reduce((n, [name, b]) => n + entryBytes(name, b.length), 0);
  const blobBytes = (xs: Iterable<Descriptor>) => [...xs].reduce((n, d) => n + entryBytes(blobPath(d.digest), d.size), 0);
  const fullBytes = smallBytes + blobBytes(blobs.values()) + blobBytes(leftOut.values()) + 2 * BLOCK;

  const target = path.resolve(file);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.partial`);
  const body = new PassThrough({ highWaterMark: 4 << 20 });
  const w = new ArchiveWriter(body);
  const report: BundleReport = {
    file, bytes: 0, images: entries.length, tags: entries.flatMap((e) => e.tags), incremental,
    blobsWritten: 0, bytesWritten: 0, blobsLeftOut: leftOut.size, bytesLeftOut: sum(leftOut.values()), fullBytes,
  };
  const total = meta.inside.bytes;
  let lastProgress = 0;
  const out = fs.createWriteStream(tmp);
  // the file's own error (a full disk) says more than the writer's "stopped reading" it causes
  let fileError: Error | undefined;
  let aborted = false;
  out.on('error', (e) => { if (!aborted) fileError ??= e; });
  const written = pipeline(body, out);
  const cannotWrite = () => new BundleError(`cannot write ${file}: ${fileError!.message}`);
  try {
    try {
      // the small files first: `tar tf` and a reader that stops early see what the bundle is
      for (const [name, b] of small) await w.bytes(name, b);
      // configs and manifests before the layers
      const order = [...blobs.values()].sort((a, b) => Number(a.kind === 'layer') - Number(b.kind === 'layer'));
      for (const b of order) {
        if (b.bytes) await w.bytes(blobPath(b.digest), b.bytes);
        else await w.blob(source, b);
        report.blobsWritten++;
        report.bytesWritten += b.size;
        if (opts.onProgress && (Date.now() - lastProgress > 2_000 || report.blobsWritten === order.length)) {
          lastProgress = Date.now();
          opts.onProgress(`bundle ${path.basename(file)}: ${report.blobsWritten} of ${order.length} blobs, ${mb(report.bytesWritten)} of ${mb(total)}`);
        }
      }
      await w.end();
    } catch (err) {
      aborted = true;
      body.destroy();
      await written.catch(() => undefined);
      throw fileError ? cannotWrite() : err;
    }
    try { await written; } catch (err) { throw fileError ? cannotWrite() : err; }
    report.bytes = fs.statSync(tmp).size;
    fs.renameSync(tmp, target);
    return report;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

// ------------------------------------------------------------------ reading

interface TarSpan { offset: number; size: number }

function cString(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? s.length : nul).toString('utf8');
}

function tarNumber(b: Buffer, start: number, len: number): number {
  // GNU base-256 for sizes past ustar's 8 GB
  if (b[start] & 0x80) {
    let n = b[start] & 0x7f;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + b[i];
    return n;
  }
  const text = cString(b, start, len).trim();
  return text ? parseInt(text, 8) : 0;
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === tarNumber(h, 148, 8);
}

/** The regular files of a tar by name (`./` dropped), read header by header without reading any file's bytes. */
export function indexTar(file: string): Map<string, TarSpan> {
  const fd = fs.openSync(file, 'r');
  try {
    const total = fs.fstatSync(fd).size;
    const files = new Map<string, TarSpan>();
    const h = Buffer.alloc(BLOCK);
    let pos = 0;
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    const readData = (offset: number, size: number) => {
      const b = Buffer.alloc(size);
      fs.readSync(fd, b, 0, size, offset);
      return b;
    };
    while (pos + BLOCK <= total) {
      fs.readSync(fd, h, 0, BLOCK, pos);
      if (h.every((x) => x === 0)) break;
      if (!checksumOk(h)) throw new BundleError(`${file} is not a tar archive (or is damaged at byte ${pos})`);
      const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
      let size = tarNumber(h, 124, 12);
      const data = pos + BLOCK;
      if (type === 'x') {
        pax = parsePax(readData(data, size));
      } else if (type === 'L') {
        longName = cString(readData(data, size), 0, size);
      } else if (type !== 'g') {
        const ustar = cString(h, 257, 6) === 'ustar';
        const prefix = ustar ? cString(h, 345, 155) : '';
        const name = pax.path ?? longName ?? (prefix ? `${prefix}/${cString(h, 0, 100)}` : cString(h, 0, 100));
        if (pax.size !== undefined) size = Number(pax.size);
        if (type === '0' || type === '7') files.set(name.replace(/^(\.\/)+/, ''), { offset: data, size });
        pax = {};
        longName = undefined;
      }
      pos = data + padded(size);
    }
    return files;
  } finally {
    fs.closeSync(fd);
  }
}

function readSpan(file: string, span: TarSpan): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(span.size);
    fs.readSync(fd, b, 0, span.size, span.offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

function parsePax(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    const space = b.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(b.subarray(i, space).toString('ascii'));
    if (!Number.isFinite(len) || len <= 0) break;
    const rec = b.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/** A bundle as read back: its images and tags, what it carries and what it left out; a BlobSource over the tar. */
export class Bundle implements BlobSource {
  constructor(
    readonly file: string,
    /** the tar's size */
    readonly bytes: number,
    readonly images: Array<{ image: OciImage; tags: string[] }>,
    private readonly files: Map<string, TarSpan>,
    /** layer blobs the site must hold (named by epr-bundle.json, or missing from the tar without one) */
    readonly leftOut: LeftOutBlob[],
    /** what the site held when the bundle was made (an incremental bundle's --since sources) */
    readonly since: Array<{ source: string; from: SinceSet['from']; images: SinceImage[] }>,
    /** every blob of the images, inside or not */
    readonly full: { blobs: number; bytes: number },
  ) {}

  get incremental(): boolean { return this.leftOut.length > 0; }

  /** the blob digests inside the tar */
  get inside(): Set<string> {
    return new Set([...this.files.keys()].filter((n) => n.startsWith('blobs/sha256/')).map((n) => `sha256:${n.slice(13)}`).filter(isDigest));
  }

  has(digest: string): boolean {
    return this.files.has(blobPath(digest));
  }

  /** The blob's bytes, read from its place in the tar and checked against its digest on the way. */
  open(digest: string): Readable {
    const span = this.files.get(blobPath(digest));
    if (!span) {
      const lo = this.leftOut.find((l) => l.digest === digest);
      throw new BundleError(`blob ${digest} is not in ${this.file}${lo ? ` (left out: the site should hold it${lo.from.length ? `, from ${lo.from.join(', ')}` : ''})` : ''}`);
    }
    const hash = crypto.createHash('sha256');
    const file = this.file;
    const check = new Transform({
      transform(chunk: Buffer, _enc, done) { hash.update(chunk); done(null, chunk); },
      flush(done) {
        const got = `sha256:${hash.digest('hex')}`;
        done(got === digest ? null : new BundleError(`${file} is damaged: blob ${digest} reads as ${got}`));
      },
    });
    const raw = span.size === 0 ? Readable.from([]) : fs.createReadStream(this.file, { start: span.offset, end: span.offset + span.size - 1, highWaterMark: 1 << 20 });
    raw.on('error', (e: Error) => check.destroy(e));
    return raw.pipe(check);
  }

  read(name: string): Buffer {
    const span = this.files.get(name);
    if (!span) throw new BundleError(`${this.file}: ${name} is not in the bundle`);
    return readSpan(this.file, span);
  }

  readBlob(digest: string): Buffer {
    return this.read(blobPath(digest));
  }

  /** The images' manifests and layers, as a later --since or a loader checks the site against. */
  sinceImages(): SinceImage[] {
    return this.images.map(({ image, tags }) => ({
      name: tags[0] ?? image.manifestDescriptor.digest,
      manifest: image.manifestDescriptor.digest,
      layers: image.layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size })),
    }));
  }
}

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/**
 * Reads a bundle (or any OCI layout tar: a Docker 25+ `docker save`, a
 * `skopeo copy oci-archive:`): the tar is indexed once, then each file is
 * read from its offset. Tags come from the index's containerd names and
 * from manifest.json's RepoTags.
 */
export function readBundle(file: string): Bundle {
  if (!fs.existsSync(file)) throw new BundleError(`${file} does not exist`);
  if (!fs.statSync(file).isFile()) throw new BundleError(`${file} is not a file`);
  const files = indexTar(file);
  const bytes = fs.statSync(file).size;
  const readFile = (name: string) => readSpan(file, files.get(name)!);
  const json = <T>(name: string): T => {
    try { return JSON.parse(readFile(name).toString('utf8')) as T; } catch (err) { throw new BundleError(`${file}: ${name} is not valid JSON (${(err as Error).message})`); }
  };
  if (!files.has('index.json') || !files.has('oci-layout')) {
    const docker = files.has('manifest.json');
    throw new NotABundleError(`${file} is ${docker ? 'a docker archive without an OCI layout (a `docker save` of an engine before Docker 25)' : 'no image bundle (no oci-layout and index.json in it)'}`, docker);
  }
  const blob = (digest: string, what: string) => {
    if (!isDigest(digest)) throw new BundleError(`${file}: ${what} names "${digest}", which is not a sha256 digest`);
    if (!files.has(blobPath(digest))) throw new BundleError(`${file}: ${what} ${digest} is not in the bundle`);
    return readFile(blobPath(digest));
  };

  const index = json<{ manifests?: Descriptor[]; annotations?: Record<string, string> }>('index.json');
  const byManifest = new Map<string, { image: OciImage; tags: string[] }>();
  const addTag = (e: { tags: string[] }, t: string | undefined) => {
    if (!t) return;
    try { t = normalTag(t); } catch { return; }
    if (!e.tags.includes(t)) e.tags.push(t);
  };
  for (const d of index.manifests ?? []) {
    let desc = d;
    if (INDEX_TYPES.has(desc.mediaType)) {
      const nested = JSON.parse(blob(desc.digest, 'an image index').toString('utf8')) as { manifests?: Descriptor[] };
      const chosen = choosePlatform(nested.manifests ?? []);
      if (!chosen) continue;
      desc = { ...chosen, annotations: d.annotations };
    }
    const manifest = blob(desc.digest, 'a manifest');
    const m = JSON.parse(manifest.toString('utf8')) as { config?: Descriptor };
    if (!m.config) throw new BundleError(`${file}: the manifest ${desc.digest} has no config`);
    const image = imageFromManifest(manifest, blob(m.config.digest, 'a config'));
    image.manifestDescriptor.mediaType = desc.mediaType;
    const e = byManifest.get(desc.digest) ?? { image, tags: [] };
    const name = desc.annotations?.['io.containerd.image.name'];
    const ref = desc.annotations?.[REF_NAME_ANNOTATION];
    // a ref.name that is only a tag names no repository: manifest.json's RepoTags do
    addTag(e, name ?? (ref?.includes('/') ? ref : undefined));
    byManifest.set(desc.digest, e);
  }
  if (files.has('manifest.json')) {
    const saved = json<Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>>('manifest.json');
    for (const s of Array.isArray(saved) ? saved : []) {
      const configHex = s.Config?.replace(/^blobs\/sha256\//, '').replace(/\.json$/, '');
      for (const e of byManifest.values()) if (configHex && e.image.configDescriptor.digest === `sha256:${configHex}`) for (const t of s.RepoTags ?? []) addTag(e, t);
    }
  }
  const images = [...byManifest.values()];
  if (!images.length) throw new BundleError(`${file}: index.json names no image`);

  let meta: Partial<BundleFile> = {};
  if (files.has(BUNDLE_FILE)) meta = json<BundleFile>(BUNDLE_FILE);
  const leftOut: LeftOutBlob[] = [];
  const named = new Map((meta.leftOut ?? []).map((l) => [l.digest, l]));
  for (const { image, tags } of images) {
    for (const l of image.layers) {
      if (files.has(blobPath(l.digest))) continue;
      let lo = leftOut.find((x) => x.digest === l.digest);
      if (!lo) {
        const known = named.get(l.digest);
        lo = { digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: l.diffId, images: [], from: known?.from ?? [] };
        leftOut.push(lo);
      }
      for (const t of tags.length ? tags : [image.manifestDescriptor.digest]) if (!lo.images.includes(t)) lo.images.push(t);
    }
  }
  const all = new Map<string, number>();
  for (const { image } of images) for (const d of [image.configDescriptor, image.manifestDescriptor, ...image.layers]) all.set(d.digest, d.size);
  const full = { blobs: all.size, bytes: [...all.values()].reduce((a, b) => a + b, 0) };
  return new Bundle(file, bytes, images, files, leftOut, meta.since ?? [], full);
}

// ------------------------------------------------------------------ --since

export interface SinceOptions {
  /** the builder's store: the first place an image reference is looked up */
  store?: OciStore;
  /** an engine: where an image reference is looked up next */
  docker?: Docker;
  /** how the registry is reached, the last place looked */
  registry?: RegistryOptions;
  /**
   * The images about to be bundled. An engine on the classic store knows an
   * image's layers by content (diff IDs), not by blob: a new image's layer
   * whose chain of diff IDs the engine image has is held.
   */
  images?: OciImage[];
}

/**
 * The layers an engine image `id` (a name or an image ID) holds of `opts.images`:
 * by manifest when the store has it, else by chains of diff IDs (a classic
 * store knows layers by content, not by blob).
 */
export async function engineSince(docker: Docker, since: string, name: string, id: string, opts: SinceOptions = {}): Promise<SinceSet | undefined> {
  const info = await inspectImage(docker, id);
  if (!info) return undefined;
  // a containerd store names the image by its manifest: the store may have that manifest
  if (opts.store?.has(info.Id)) {
    try {
      const image = opts.store.image(info.Id);
      return { source: since, from: 'engine', digests: new Set(image.layers.map((l) => l.digest)), images: [{ name, manifest: image.manifestDescriptor.digest, layers: image.layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size })) }] };
    } catch { /* not a manifest */ }
  }
  const chains = new Set(diffIdChains(info.RootFS?.Layers ?? []));
  const digests = new Set<string>();
  const layers: SinceImage['layers'] = [];
  for (const image of opts.images ?? []) {
    const own = diffIdChains(image.layers.map((l) => l.diffId));
    for (const [i, l] of image.layers.entries()) {
      if (!chains.has(own[i])) break;
      if (!digests.has(l.digest)) layers.push({ digest: l.digest, diffId: l.diffId, size: l.size });
      digests.add(l.digest);
    }
  }
  return { source: since, from: 'engine', digests, images: [{ name, manifest: info.Id, layers }] };
}

/**
 * What the site holds, from `--since`: an earlier bundle file (every blob in
 * it, and those it left out in turn: the site had those too), or an image
 * reference (its layers: from the builder's store when it has that name, else
 * the engine, else the registry).
 */
export async function sinceSet(since: string, opts: SinceOptions = {}): Promise<SinceSet> {
  if (fs.existsSync(since) && fs.statSync(since).isFile()) {
    const b = readBundle(since);
    const digests = new Set([...b.inside, ...b.leftOut.map((l) => l.digest)]);
    // the site got an earlier bundle's left-out blobs from its own --since: keep those images, once each
    const images = new Map<string, SinceImage>();
    for (const i of [...b.sinceImages(), ...b.since.flatMap((s) => s.images)]) if (!images.has(i.manifest)) images.set(i.manifest, i);
    return { source: since, from: 'bundle', digests, images: [...images.values()] };
  }
  let ref: ImageReference;
  try {
    ref = parseReference(since);
  } catch (err) {
    throw new BundleError(`--since ${since}: neither a bundle file (no such file) nor an image reference (${(err as ReferenceError).message})`);
  }
  const name = formatReference(ref);
  const fromImage = (image: OciImage, from: SinceSet['from']): SinceSet => ({
    source: since,
    from,
    digests: new Set(image.layers.map((l) => l.digest)),
    images: [{ name, manifest: image.manifestDescriptor.digest, layers: image.layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size })) }],
  });

  if (opts.store) {
    const image = [since, name, containerdName(since)].map((n) => opts.store!.resolve(n)).find(Boolean);
    if (image) return fromImage(image, 'store');
  }

  if (opts.docker) {
    const found = await engineSince(opts.docker, since, name, name, opts);
    if (found) return found;
  }

  let got: Awaited<ReturnType<typeof getManifest>>;
  try {
    got = await getManifest(ref, opts.registry);
    if (got && INDEX_TYPES.has(got.descriptor.mediaType)) {
      const chosen = choosePlatform((JSON.parse(got.bytes.toString('utf8')) as { manifests?: Descriptor[] }).manifests ?? []);
      got = chosen ? await getManifest({ ...ref, tag: undefined, digest: chosen.digest }, opts.registry) : undefined;
    }
  } catch (err) {
    throw new BundleError(`--since ${since}: not in the builder's store${opts.docker ? ' nor in the engine' : ''}, and the registry could not be read: ${(err as Error).message}`);
  }
  if (!got) throw new BundleError(`--since ${since}: no such image in the builder's store${opts.docker ? ', the engine' : ''} or the registry`);
  const m = JSON.parse(got.bytes.toString('utf8')) as { layers?: Descriptor[] };
  const layers = (m.layers ?? []).map((l) => ({ digest: l.digest, size: l.size }));
  return { source: since, from: 'registry', digests: new Set(layers.map((l) => l.digest)), images: [{ name, manifest: got.descriptor.digest, layers }] };
}

// ------------------------------------------------------------------ what a site lacks

/** A left-out blob the target does not hold. */
export interface MissingBlob {
  /** the bundle image (its first tag) that needs it */
  image: string;
  /** 1-based, bottom first */
  layer: number;
  layers: number;
  digest: string;
  diffId: string;
  size: number;
  /** where the bundle expected the site to have it from */
  from: string[];
  /** the earlier images that had it */
  cameWith: string[];
}

function cameWith(bundle: Bundle, digest: string): string[] {
  return [...new Set(bundle.since.flatMap((s) => s.images.filter((i) => i.layers.some((l) => l.digest === digest)).map((i) => i.name)))];
}

/**
 * The left-out layers of an incremental bundle an engine lacks. The classic
 * store loads a layer file only when it lacks the layer's chain (the image's
 * diff IDs up to it), so each left-out layer needs its chain in some image
 * of the engine. The containerd store needs the blob itself in its content
 * store: held when an image it lists is a manifest (of this bundle, of what
 * the bundle was made since, or of the builder's store) naming that blob.
 */
export async function missingFromEngine(docker: Docker, bundle: Bundle, kind: EngineStoreKind, store?: OciStore): Promise<MissingBlob[]> {
  if (!bundle.incremental) return [];
  const lo = new Map(bundle.leftOut.map((l) => [l.digest, l]));
  const missing: MissingBlob[] = [];
  let held: (image: OciImage, i: number) => boolean;
  if (kind === 'classic') {
    const chains = await heldChains(docker, [], { anyImage: true });
    held = (image, i) => chains.has(diffIdChains(image.layers.map((l) => l.diffId))[i]);
  } else {
    const known = [
      ...bundle.sinceImages(),
      ...bundle.since.flatMap((s) => s.images),
    ].map((i) => ({ manifest: i.manifest, layers: i.layers.map((l) => l.digest) }));
    if (store) {
      for (const e of store.entries()) {
        try { known.push({ manifest: e.digest, layers: store.image(e.digest).layers.map((l) => l.digest) }); } catch { /* pruned meanwhile */ }
      }
    }
    const blobs = await containerdHeldBlobs(docker, known);
    held = (image, i) => blobs.has(image.layers[i].digest);
  }
  for (const { image, tags } of bundle.images) {
    image.layers.forEach((l, i) => {
      if (!lo.has(l.digest) || held(image, i)) return;
      missing.push({
        image: tags[0] ?? image.manifestDescriptor.digest, layer: i + 1, layers: image.layers.length,
        digest: l.digest, diffId: l.diffId, size: l.size, from: lo.get(l.digest)!.from, cameWith: cameWith(bundle, l.digest),
      });
    });
  }
  return missing;
}

/**
 * The left-out layers a registry lacks, for the images going to `targets`
 * (one list of references per bundle image). A blob held in another of the
 * target repositories counts as held: the push mounts it from there.
 */
export async function missingFromRegistry(bundle: Bundle, targets: ImageReference[][], opts: RegistryOptions = {}): Promise<MissingBlob[]> {
  if (!bundle.incremental) return [];
  const lo = new Map(bundle.leftOut.map((l) => [l.digest, l]));
  const repos = [...new Map(targets.flat().map((r) => [`${r.registry}/${r.repository}`, r])).values()];
  const found = new Map<string, boolean>();
  const inAnyRepo = async (digest: string) => {
    if (!found.has(digest)) {
      let yes = false;
      for (const r of repos) if (!yes && await blobExists(r, digest, opts)) yes = true;
      found.set(digest, yes);
    }
    return found.get(digest)!;
  };
  const missing: MissingBlob[] = [];
  for (const [n, { image, tags }] of bundle.images.entries()) {
    if (!targets[n]?.length) continue;
    for (const [i, l] of image.layers.entries()) {
      if (!lo.has(l.digest) || await inAnyRepo(l.digest)) continue;
      missing.push({
        image: tags[0] ?? image.manifestDescriptor.digest, layer: i + 1, layers: image.layers.length,
        digest: l.digest, diffId: l.diffId, size: l.size, from: lo.get(l.digest)!.from, cameWith: cameWith(bundle, l.digest),
      });
    }
  }
  return missing;
}

/** One line per missing blob, saying what to load first. */
export function describeMissing(missing: MissingBlob[]): string[] {
  return missing.map((m) => {
    const where = m.cameWith.length ? `it came with ${m.cameWith.join(', ')}` : '';
    const from = m.from.length ? `${where ? ' ' : 'it came '}from ${m.from.join(', ')}` : '';
    return `${m.image}: layer ${m.layer} of ${m.layers} ${m.digest} (${mb(m.size)}, diff ID ${m.diffId.slice(0, 19)})${where || from ? `: ${where}${from}` : ''}`;
  });
}
