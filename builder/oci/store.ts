import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { writeCacheFile } from '../cache-files.js';
import {
  digestHex, imageFromManifest, MEDIA_TYPES, REF_NAME_ANNOTATION, sha256Digest, type BlobSink, type BlobSource, type Descriptor, type LayerDescriptor, type OciImage,
} from './model.js';

/**
 * The builder's own image store: an OCI image layout (`oci-layout`,
 * `index.json`, `blobs/sha256/<hex>`) under the builder cache. Every layer
 * is written once, compressed, and named by its digest, so the three
 * distributions share their common layers, and every target (an engine, a
 * registry, a bundle) is served from here. `keys/` maps a layer's content key
 * (the chained layer key of builder/assemble.ts) to its blob, so an unchanged
 * layer is never packed or compressed again.
 *
 * Writes are whole or nothing: a blob goes to a temporary file, is checked
 * against its digest and renamed into place.
 */

/** zlib level of new layers: gzip -1 packs about as small as -6 on package trees, at three times the speed */
export const GZIP_LEVEL = 1;
/** the uncompressed bytes of one gzip member: large enough that headers cost nothing, small enough to spread over the cores */
export const GZIP_BLOCK = 4 << 20;
/** blocks compressed at once (zlib runs them on libuv's thread pool, 4 threads by default) */
const COMPRESSORS = Math.max(2, Math.min(4, os.availableParallelism()));
const gzipAsync = promisify(zlib.gzip) as (data: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

interface IndexFile {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
}

export class StoreError extends Error {}

export class OciStore implements BlobSource, BlobSink {
  private constructor(readonly dir: string) {}

  /** The store in `cacheDir` (created when missing). */
  static open(dir: string): OciStore {
    const s = new OciStore(dir);
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    const layout = path.join(dir, 'oci-layout');
    if (!fs.existsSync(layout)) fs.writeFileSync(layout, '{"imageLayoutVersion":"1.0.0"}');
    return s;
  }

  path(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  has(digest: string): boolean {
    return fs.existsSync(this.path(digest));
  }

  size(digest: string): number {
    return fs.statSync(this.path(digest)).size;
  }

  open(digest: string): Readable {
    if (!this.has(digest)) throw new StoreError(`blob ${digest} is not in the builder's store (${this.dir})`);
    return fs.createReadStream(this.path(digest), { highWaterMark: 1 << 20 });
  }

  read(digest: string): Buffer {
    return fs.readFileSync(this.path(digest));
  }

  private temp(): string {
    return path.join(this.dir, 'blobs', `.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  }

  /** Takes a blob whose digest and size are known; one that does not match them is refused and leaves nothing. */
  async write(desc: Descriptor, body: Readable): Promise<void> {
    if (this.has(desc.digest)) {
      body.resume();
      return;
    }
    const tmp = this.temp();
    const hash = crypto.createHash('sha256');
    let size = 0;
    try {
      await pipeline(body, async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      }, fs.createWriteStream(tmp));
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== desc.digest || size !== desc.size) throw new StoreError(`blob ${desc.digest}: received ${size} bytes with digest ${got}, expected ${desc.size} bytes`);
      fs.renameSync(tmp, this.path(desc.digest));
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** Stores small bytes (a config, a manifest) and returns their descriptor. */
  putBytes(bytes: Buffer, mediaType: string): Descriptor {
    const digest = sha256Digest(bytes);
    if (!this.has(digest)) {
      const err = writeCacheFile(this.path(digest), bytes);
      if (err) throw new StoreError(`cannot write to the builder's store ${this.dir}: ${err}`);
    }
    return { mediaType, digest, size: bytes.length };
  }

  /**
   * A new layer: `produce` writes its uncompressed tar through the function
   * it is given (which waits while the compressors catch up); the tar is
   * hashed for the diff ID, gzipped, hashed again for the digest, stored.
   *
   * The tar is compressed in blocks of GZIP_BLOCK bytes on every core, each
   * block its own gzip member, written in order: one valid gzip stream
   * (readers take a stream of members as one, RFC 1952), as deterministic as
   * a single member, and barely larger, since deflate looks back only 32 KB.
   */
  async writeLayer(produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>): Promise<LayerDescriptor> {
    const tmp = this.temp();
    const diff = crypto.createHash('sha256');
    const blob = crypto.createHash('sha256');
    let size = 0;
    const fd = fs.openSync(tmp, 'w');
    const inFlight: Array<Promise<Buffer>> = [];
    let block: Buffer[] = [];
    let blockBytes = 0;
    const drainOne = async () => {
      const out = await inFlight.shift()!;
      blob.update(out);
      size += out.length;
      let off = 0;
      while (off < out.length) off += fs.writeSync(fd, out, off);
    };
    const cut = async () => {
      if (blockBytes === 0) return;
      const data = block.length === 1 ? block[0] : Buffer.concat(block, blockBytes);
      block = [];
      blockBytes = 0;
      const member = gzipAsync(data, { level: GZIP_LEVEL });
      // awaited in order below; a failure meanwhile must not count as unhandled
      member.catch(() => undefined);
      inFlight.push(member);
      if (inFlight.length >= COMPRESSORS) await drainOne();
    };
    const write = async (chunk: Buffer) => {
      diff.update(chunk);
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(rest.length, GZIP_BLOCK - blockBytes);
        block.push(take === rest.length ? rest : rest.subarray(0, take));
        blockBytes += take;
        rest = rest.subarray(take);
        if (blockBytes >= GZIP_BLOCK) await cut();
      }
    };
    try {
      await produce(write);
      await cut();
      while (inFlight.length) await drainOne();
      fs.closeSync(fd);
      const digest = `sha256:${blob.digest('hex')}`;
      if (!this.has(digest)) fs.renameSync(tmp, this.path(digest));
      return { mediaType: MEDIA_TYPES.ociLayerGzip, digest, size, diffId: `sha256:${diff.digest('hex')}` };
    } catch (err) {
      await Promise.allSettled(inFlight);
      try { fs.closeSync(fd); } catch { /* closed */ }
      throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  // ---------------------------------------------------------------- layer keys

  private keyFile(key: string): string {
    return path.join(this.dir, 'keys', `${key.replace(/[^\w.+-]/g, '_')}.json`);
  }

  /** The stored layer made from content `key`, if its blob is still here. */
  layerFor(key: string): LayerDescriptor | undefined {
    try {
      const d = JSON.parse(fs.readFileSync(this.keyFile(key), 'utf8')) as LayerDescriptor;
      return d.digest && d.diffId && this.has(d.digest) ? d : undefined;
    } catch {
      return undefined;
    }
  }

  rememberLayer(key: string, layer: LayerDescriptor): void {
    writeCacheFile(this.keyFile(key), JSON.stringify(layer));
  }

  // ---------------------------------------------------------------- images

  /** Writes an image's config and manifest (OCI media types) and returns it. */
  putImage(config: Buffer, layers: LayerDescriptor[], annotations?: Record<string, string>): OciImage {
    const configDescriptor = this.putBytes(config, MEDIA_TYPES.ociConfig);
    const manifestJson = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: configDescriptor,
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      ...(annotations && Object.keys(annotations).length ? { annotations } : {}),
    };
    const manifest = Buffer.from(JSON.stringify(manifestJson));
    for (const l of layers) if (!this.has(l.digest)) throw new StoreError(`layer ${l.digest} is not in the builder's store`);
    const manifestDescriptor = this.putBytes(manifest, MEDIA_TYPES.ociManifest);
    return { manifest, manifestDescriptor, config, configDescriptor, layers };
  }

  /** The image whose manifest is `digest`, read back from its blobs. */
  image(digest: string): OciImage {
    const manifest = this.read(digest);
    const m = JSON.parse(manifest.toString('utf8')) as { config: Descriptor };
    return imageFromManifest(manifest, this.read(m.config.digest));
  }

  private readIndex(): IndexFile {
    try {
      const idx = JSON.parse(fs.readFileSync(path.join(this.dir, 'index.json'), 'utf8')) as IndexFile;
      if (Array.isArray(idx.manifests)) return idx;
    } catch { /* none yet */ }
    return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
  }

  /** Every image the index names, named or not, in index order. */
  manifestDescriptors(): Descriptor[] {
    return this.readIndex().manifests;
  }

  /** The named images of the store, newest first. */
  entries(): Array<{ name: string; digest: string; annotations: Record<string, string> }> {
    return this.readIndex().manifests
      .filter((d) => d.annotations?.[REF_NAME_ANNOTATION])
      .map((d) => ({ name: d.annotations![REF_NAME_ANNOTATION], digest: d.digest, annotations: d.annotations! }))
      .filter((e) => this.has(e.digest))
      .reverse();
  }

  /** Points `name` (any text: a full image reference here) at the image, with extra annotations kept in the index. */
  tag(name: string, image: OciImage, annotations: Record<string, string> = {}): void {
    const idx = this.readIndex();
    idx.manifests = idx.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== name);
    idx.manifests.push({ ...image.manifestDescriptor, annotations: { ...annotations, [REF_NAME_ANNOTATION]: name } });
    const err = writeCacheFile(path.join(this.dir, 'index.json'), JSON.stringify(idx));
    if (err) throw new StoreError(`cannot write to the builder's store ${this.dir}: ${err}`);
  }

  untag(name: string): void {
    const idx = this.readIndex();
    const kept = idx.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== name);
    if (kept.length === idx.manifests.length) return;
    idx.manifests = kept;
    writeCacheFile(path.join(this.dir, 'index.json'), JSON.stringify(idx));
  }

  resolve(name: string): OciImage | undefined {
    const e = this.entries().find((x) => x.name === name);
    return e ? this.image(e.digest) : undefined;
  }

  /**
   * Keeps the `keep` newest named images (and every name in `pinned`) and
   * removes the blobs no kept image names; the layer keys of removed blobs
   * simply stop answering. Returns the bytes freed.
   */
  prune(keep: number, pinned: Set<string> = new Set()): number {
    const idx = this.readIndex();
    const named = idx.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION]);
    const kept = named.filter((d, i) => i >= named.length - keep || pinned.has(d.annotations![REF_NAME_ANNOTATION]));
    if (kept.length < named.length) {
      idx.manifests = kept;
      writeCacheFile(path.join(this.dir, 'index.json'), JSON.stringify(idx));
    }
    const live = new Set<string>();
    for (const d of kept) {
      if (!this.has(d.digest)) continue;
      live.add(d.digest);
      const img = this.image(d.digest);
      live.add(img.configDescriptor.digest);
      for (const l of img.layers) live.add(l.digest);
    }
    let freed = 0;
    const dir = path.join(this.dir, 'blobs', 'sha256');
    const cutoff = Date.now() - 60 * 60_000;
    for (const hex of fs.readdirSync(dir)) {
      if (live.has(`sha256:${hex}`)) continue;
      const file = path.join(dir, hex);
      try {
        const st = fs.statSync(file);
        // a blob written within the hour may belong to a build running now
        if (st.mtimeMs > cutoff) continue;
        fs.rmSync(file);
        freed += st.size;
      } catch { /* gone already */ }
    }
    return freed;
  }
}
