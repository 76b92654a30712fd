import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import crypto from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import tarStream from 'tar-stream';
import { EngineOperationError, followStream, inspectImage, TIMEOUTS, withTimeout } from '../image.js';
import { fileHeader } from '../tar.js';
import { formatReference, parseReference } from './reference.js';
import { digestHex, MEDIA_TYPES, REF_NAME_ANNOTATION, sha256Digest, type BlobSource, type LayerDescriptor, type OciImage, type TransferReport } from './model.js';
import type { OciStore } from './store.js';

/**
 * The engine as a place images live: reading an image out of it into the
 * store (`docker save`), and loading a store image into it (`docker load`).
 *
 * Two kinds of image store sit behind the same API:
 * - the classic layer store (docker.io 20.10 to 28 by default) keeps layers
 *   by chain; `docker load` reads a layer file only when the engine lacks
 *   that chain, so the archive leaves out the layers the engine holds;
 * - the containerd image store (Docker 29's and Docker Desktop's default)
 *   keeps blobs by digest and imports an OCI layout; the archive leaves out
 *   the blobs the engine's content store holds, which it proved to accept,
 *   and falls back to every blob when the engine asks for one it lacks.
 */

export type EngineStoreKind = 'classic' | 'containerd';

export async function engineStoreKind(docker: Docker): Promise<EngineStoreKind> {
  const info = await withTimeout(docker.info() as Promise<{ DriverStatus?: Array<[string, string]> }>, TIMEOUTS.quick, 'docker info');
  const driverType = (info.DriverStatus ?? []).find(([k]) => k === 'driver-type')?.[1] ?? '';
  return /containerd\.snapshotter/.test(driverType) ? 'containerd' : 'classic';
}

function writer(stream: PassThrough): (chunk: Buffer) => Promise<void> {
  return (chunk) => new Promise((resolve, reject) => {
    if (stream.destroyed) { reject(new EngineOperationError('docker load: the engine stopped reading')); return; }
    if (stream.write(chunk)) { resolve(); return; }
    const done = (err?: Error) => { stream.off('drain', ok); stream.off('close', closed); if (err) reject(err); else resolve(); };
    const ok = () => done();
    const closed = () => done(new EngineOperationError('docker load: the engine stopped reading'));
    stream.once('drain', ok);
    stream.once('close', closed);
  });
}

/** A tar archive written entry by entry, with back pressure, into a stream someone reads. */
export class ArchiveWriter {
  private readonly write: (chunk: Buffer) => Promise<void>;
  constructor(readonly body: PassThrough) {
    this.write = writer(body);
  }

  async bytes(name: string, data: Buffer): Promise<void> {
    await this.write(fileHeader(name, data.length));
    if (data.length) await this.write(data);
    await this.pad(data.length);
  }

  /** A file whose exact size is known, streamed from `src`. */
  async stream(name: string, size: number, src: Readable): Promise<void> {
    await this.write(fileHeader(name, size));
    let n = 0;
    for await (const chunk of src as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > size) throw new EngineOperationError(`${name}: longer than its ${size} bytes`);
      await this.write(chunk);
    }
    if (n !== size) throw new EngineOperationError(`${name}: ${n} bytes, ${size} expected`);
    await this.pad(size);
  }

  async blob(source: BlobSource, desc: { digest: string; size: number }): Promise<void> {
    await this.stream(`blobs/sha256/${digestHex(desc.digest)}`, desc.size, source.open(desc.digest));
  }

  private async pad(size: number): Promise<void> {
    const pad = (512 - (size % 512)) % 512;
    if (pad) await this.write(Buffer.alloc(pad));
  }

  async end(): Promise<void> {
    await this.write(Buffer.alloc(1024));
    this.body.end();
  }
}

/** The full name containerd gives an image: docker.io/library/x:tag for x:tag. */
export function containerdName(ref: string): string {
  const r = parseReference(ref);
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}`;
}

/**
 * The layout files of a bundle or an engine archive: index.json (every tag),
 * manifest.json (docker load), oci-layout. `indexAnnotations` go on
 * index.json itself (a bundle marks there what it left out).
 */
export function layoutFiles(
  images: Array<{ image: OciImage; tags: string[] }>,
  opts: { indexAnnotations?: Record<string, string> } = {},
): { index: Buffer; manifestJson: Buffer; ociLayout: Buffer } {
  const manifests = images.flatMap(({ image, tags }) => (tags.length ? tags : [undefined]).map((t) => ({
    ...image.manifestDescriptor,
    ...(t ? { annotations: { 'io.containerd.image.name': containerdName(t), [REF_NAME_ANNOTATION]: parseReference(t).tag ?? 'latest' } } : {}),
  })));
  const annotations = opts.indexAnnotations && Object.keys(opts.indexAnnotations).length ? { annotations: opts.indexAnnotations } : {};
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests, ...annotations }));
  const manifestJson = Buffer.from(JSON.stringify(images.map(({ image, tags }) => ({
    Config: `blobs/sha256/${digestHex(image.configDescriptor.digest)}`,
    RepoTags: tags.map((t) => formatReference(parseReference(t))),
    Layers: image.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
  }))));
  return { index, manifestJson, ociLayout: Buffer.from('{"imageLayoutVersion":"1.0.0"}') };
}

/**
 * The layer chains the engine holds (each image's diff IDs as bottom-up
 * prefixes `/d1/d2...`): of every image with our label (or, with `anyImage`,
 * every image), plus `also`. The classic store loads a layer only when it
 * lacks that chain, so a chain held is a layer an archive may leave out.
 */
export async function heldChains(docker: Docker, also: string[], opts: { anyImage?: boolean } = {}): Promise<Set<string>> {
  const chains = new Set<string>();
  const add = (layers: string[]) => { for (const c of diffIdChains(layers)) chains.add(c); };
  const filter = opts.anyImage ? {} : { filters: JSON.stringify({ label: ['org.elastic.package-registry.distribution'] }) };
  const images = await withTimeout(docker.listImages(filter as Docker.ListImagesOptions), TIMEOUTS.quick, 'docker images');
  for (const ref of [...also, ...images.map((i) => i.Id)]) {
    const info = await inspectImage(docker, ref);
    if (info?.RootFS?.Layers) add(info.RootFS.Layers);
  }
  return chains;
}

/** Each layer's chain: the diff IDs from the bottom up to it (`/d1`, `/d1/d2`, ...), as the classic store keys layers. */
export function diffIdChains(diffIds: string[]): string[] {
  let chain = '';
  return diffIds.map((d) => (chain = `${chain}/${d}`));
}

export interface LoadResult extends TransferReport {
  /** what the engine calls the image (classic: the config digest; containerd: the manifest digest) */
  id: string;
  store: EngineStoreKind;
  /** how it was loaded: the layers the engine lacked, or every blob */
  path: 'missing layers' | 'missing blobs' | 'full archive';
}

async function runLoad(docker: Docker, fill: (w: ArchiveWriter) => Promise<void>): Promise<void> {
  const body = new PassThrough({ highWaterMark: 4 << 20 });
  const w = new ArchiveWriter(body);
  const loaded = (async () => {
    const stream = await withTimeout(docker.loadImage(body, { quiet: true }) as unknown as Promise<Readable>, TIMEOUTS.load, 'docker load');
    return followStream(stream, 'docker load', TIMEOUTS.load);
  })();
  try {
    await Promise.all([(async () => { await fill(w); await w.end(); })(), loaded]);
  } catch (err) {
    body.destroy();
    await loaded.catch(() => undefined);
    throw err;
  }
}

/**
 * Loads a store image into the engine under `tag`. The classic store gets a
 * docker archive without the layers it holds; the containerd store an OCI
 * layout without the blobs its content store holds (when that is refused, the
 * whole image).
 */
export async function loadIntoEngine(docker: Docker, store: OciStore, image: OciImage, tag: string, opts: { kind?: EngineStoreKind; alsoHeld?: string[] } = {}): Promise<LoadResult> {
  const kind = opts.kind ?? await engineStoreKind(docker);
  const report: LoadResult = { id: '', store: kind, path: 'full archive', blobsSent: 0, bytesSent: 0, blobsPresent: 0, bytesPresent: 0 };
  const files = layoutFiles([{ image, tags: [tag] }]);
  if (kind === 'classic') {
    const held = await heldChains(docker, opts.alsoHeld ?? []);
    const chains = diffIdChains(image.layers.map((l) => l.diffId));
    const send: LayerDescriptor[] = [];
    image.layers.forEach((l, i) => {
      if (held.has(chains[i])) { report.blobsPresent++; report.bytesPresent += l.size; } else send.push(l);
    });
    report.path = 'missing layers';
    await runLoad(docker, async (w) => {
      for (const l of send) { await w.blob(store, l); report.blobsSent++; report.bytesSent += l.size; }
      await w.bytes(`blobs/sha256/${digestHex(image.configDescriptor.digest)}`, image.config);
      await w.bytes('manifest.json', files.manifestJson);
    });
  } else {
    const held = await containerdHeld(docker, store, image);
    const sendAll = async (skip: Set<string>) => {
      report.blobsSent = 0; report.bytesSent = 0; report.blobsPresent = 0; report.bytesPresent = 0;
      await runLoad(docker, async (w) => {
        await w.bytes('oci-layout', files.ociLayout);
        for (const l of image.layers) {
          if (skip.has(l.digest)) { report.blobsPresent++; report.bytesPresent += l.size; continue; }
          await w.blob(store, l);
          report.blobsSent++; report.bytesSent += l.size;
        }
        await w.bytes(`blobs/sha256/${digestHex(image.configDescriptor.digest)}`, image.config);
        await w.bytes(`blobs/sha256/${digestHex(image.manifestDescriptor.digest)}`, image.manifest);
        await w.bytes('index.json', files.index);
        await w.bytes('manifest.json', files.manifestJson);
      });
    };
    if (held.size > 0) {
      try {
        await sendAll(held);
        report.path = 'missing blobs';
      } catch (err) {
        if (!/not found|missing|no such|content digest/i.test((err as Error).message)) throw err;
        await sendAll(new Set());
        report.path = 'full archive';
      }
    } else {
      await sendAll(new Set());
    }
  }
  const info = await inspectImage(docker, tag);
  const ids = [image.configDescriptor.digest, image.manifestDescriptor.digest];
  if (!info || !ids.includes(info.Id)) throw new EngineOperationError(`docker load: expected ${tag} to be ${image.configDescriptor.digest.slice(0, 19)}, found ${info?.Id ?? 'nothing'}`);
  report.id = info.Id;
  return report;
}

/**
 * The layer blobs the containerd store's engine holds, among those the
 * `known` manifests name. The engine names an image by its manifest digest
 * and keeps that image's blobs in its content store, so every known manifest
 * whose digest the engine lists as an image ID has its layers there.
 */
export async function containerdHeldBlobs(docker: Docker, known: Iterable<{ manifest: string; layers: string[] }>): Promise<Set<string>> {
  const images = await withTimeout(docker.listImages({ all: true } as Docker.ListImagesOptions), TIMEOUTS.quick, 'docker images');
  const ids = new Set(images.map((i) => i.Id));
  const held = new Set<string>();
  for (const k of known) if (ids.has(k.manifest)) for (const l of k.layers) held.add(l);
  return held;
}

/** The layer blobs of `image` the containerd store's engine holds, as the builder's store knows the engine's images. */
async function containerdHeld(docker: Docker, store: OciStore, image: OciImage): Promise<Set<string>> {
  const known = function* () {
    for (const e of store.entries()) {
      try { yield { manifest: e.digest, layers: store.image(e.digest).layers.map((l) => l.digest) }; } catch { /* pruned meanwhile */ }
    }
  };
  const held = await containerdHeldBlobs(docker, known());
  return new Set(image.layers.map((l) => l.digest).filter((d) => held.has(d)));
}

/**
 * Copies an engine image into the store: `docker save`, then each layer as
 * a gzip blob (a classic engine saves layers uncompressed; a containerd one
 * saves its blobs as they are) and the config exactly as the engine holds it,
 * so the image ID stays the same.
 */
export async function importFromEngine(docker: Docker, ref: string, store: OciStore): Promise<OciImage> {
  const info = await inspectImage(docker, ref);
  if (!info) throw new EngineOperationError(`image ${ref} is not in the engine`);
  const stream = await withTimeout(docker.getImage(info.Id).get() as unknown as Promise<Readable>, TIMEOUTS.quick, `docker save ${ref}`);
  const tmpDir = fs.mkdtempSync(path.join(store.dir, 'blobs', '.import-'));
  try {
    const files = new Map<string, string>();
    const extract = tarStream.extract();
    let n = 0;
    extract.on('entry', (h, body, next) => {
      if (h.type !== 'file') { body.resume(); body.on('end', next); return; }
      const file = path.join(tmpDir, String(n++));
      files.set(h.name.replace(/^\.\//, ''), file);
      pipeline(body, fs.createWriteStream(file)).then(() => next(), (e) => extract.destroy(e));
    });
    await withTimeout(pipeline(stream, extract), TIMEOUTS.save, `docker save ${ref}`, () => stream.destroy());
    const read = (name: string) => {
      const f = files.get(name);
      if (!f) throw new EngineOperationError(`docker save ${ref}: ${name} is not in the saved image`);
      return fs.readFileSync(f);
    };
    const saved = JSON.parse(read('manifest.json').toString('utf8')) as Array<{ Config: string; Layers: string[] }>;
    const config = read(saved[0].Config);
    const configDigest = sha256Digest(config);
    const cfg = JSON.parse(config.toString('utf8')) as { rootfs: { diff_ids: string[] } };
    const diffIds = cfg.rootfs.diff_ids;
    if (saved[0].Layers.length !== diffIds.length) throw new EngineOperationError(`docker save ${ref}: ${saved[0].Layers.length} layers for ${diffIds.length} diff IDs`);
    const layers: LayerDescriptor[] = [];
    for (const [i, name] of saved[0].Layers.entries()) {
      const file = files.get(name);
      if (!file) throw new EngineOperationError(`docker save ${ref}: layer ${name} is not in the saved image`);
      layers.push(await layerFromFile(store, file, diffIds[i]));
    }
    // a containerd engine names the image by its manifest: keep that manifest when the save has it
    const own = files.has(`blobs/sha256/${digestHex(info.Id)}`) ? read(`blobs/sha256/${digestHex(info.Id)}`) : undefined;
    if (own && sha256Digest(own) === info.Id && ownManifestFits(own, configDigest, layers)) {
      store.putBytes(config, MEDIA_TYPES.ociConfig);
      store.putBytes(own, JSON.parse(own.toString('utf8')).mediaType ?? MEDIA_TYPES.ociManifest);
      return store.image(info.Id);
    }
    if (configDigest !== info.Id) throw new EngineOperationError(`docker save ${ref}: its config is ${configDigest}, the engine says ${info.Id}`);
    return store.putImage(config, layers);
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

function ownManifestFits(manifest: Buffer, configDigest: string, layers: LayerDescriptor[]): boolean {
  try {
    const m = JSON.parse(manifest.toString('utf8')) as { config?: { digest?: string }; layers?: Array<{ digest?: string }> };
    return m.config?.digest === configDigest && m.layers?.length === layers.length && m.layers.every((l, i) => l.digest === layers[i].digest);
  } catch {
    return false;
  }
}

/** A saved layer file as a store blob: gzip kept as it is, a plain tar compressed (its diff ID checked). */
async function layerFromFile(store: OciStore, file: string, diffId: string): Promise<LayerDescriptor> {
  const fd = fs.openSync(file, 'r');
  const magic = Buffer.alloc(4);
  fs.readSync(fd, magic, 0, 4, 0);
  fs.closeSync(fd);
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    const digest = await fileDigest(file);
    const size = fs.statSync(file).size;
    await store.write({ mediaType: MEDIA_TYPES.ociLayerGzip, digest, size }, fs.createReadStream(file));
    return { mediaType: MEDIA_TYPES.ociLayerGzip, digest, size, diffId };
  }
  if (magic.readUInt32LE(0) === 0xfd2fb528) {
    const digest = await fileDigest(file);
    const size = fs.statSync(file).size;
    await store.write({ mediaType: MEDIA_TYPES.ociLayerZstd, digest, size }, fs.createReadStream(file));
    return { mediaType: MEDIA_TYPES.ociLayerZstd, digest, size, diffId };
  }
  const layer = await store.writeLayer(async (write) => {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) await write(chunk);
  });
  if (layer.diffId !== diffId) throw new EngineOperationError(`a saved layer's content is ${layer.diffId}, its image says ${diffId}`);
  return layer;
}

async function fileDigest(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(chunk);
  return `sha256:${h.digest('hex')}`;
}

