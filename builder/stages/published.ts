import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type Docker from 'dockerode';
import type { OciStore } from '../oci/store.js';
import type { Descriptor, OciImage } from '../oci/model.js';
import { imageFromManifest } from '../oci/model.js';
import { parseReference } from '../oci/reference.js';
import { RegistryClient, type RegistryOptions } from '../oci/registry.js';
import tarStream from 'tar-stream';
import { EngineOperationError, inspectImage, pullImage, removeContainer, tagImage, untag, withTimeout, TIMEOUTS } from '../image.js';
import { LABEL_PREFIX } from '../tags.js';
import { packagesDigest } from '../merge.js';
import type { BakedPackage } from './diff.js';

/**
 * The package list baked into a distribution image
 * (/package-registry/packages.json), read without starting the image: from the
 * local engine (docker create + copy the file out), or from the registry (pull,
 * read, then put the local tag back where it was).
 */

export const PACKAGES_FILE = '/package-registry/packages.json';

export interface BakedList {
  distribution: string;
  packagesDigest: string;
  packages: BakedPackage[];
}

export type PublishedFrom = 'auto' | 'local' | 'registry';

export interface PublishedImage {
  ref: string;
  source: 'local' | 'registry';
  image: string;
  /** image size in bytes (docker image inspect .Size) */
  size: number;
  labels: Record<string, string>;
  list: BakedList;
}

export type PublishedLookup =
  | { found: true; published: PublishedImage }
  | { found: false; ref: string; why: string };

export function bakedList(distribution: string, served: Array<{ name: string; version: string; hash: string; layer: string }>, digest: string): BakedList {
  return { distribution, packagesDigest: digest, packages: served.map((p) => ({ name: p.name, version: p.version, hash: p.hash, layer: p.layer })) };
}

async function readFileFromImage(docker: Docker, image: string, file: string): Promise<Buffer | undefined> {
  // created, never started: the file is copied out of the image's filesystem
  const container = await withTimeout(docker.createContainer({ Image: image, Cmd: ['true'], Labels: { [`${LABEL_PREFIX}.builder-check`]: 'true' } }), TIMEOUTS.quick, 'docker create');
  try {
    let archive: NodeJS.ReadableStream;
    try {
      archive = await withTimeout(container.getArchive({ path: file }), TIMEOUTS.quick, `docker cp ${file}`);
    } catch (err) {
      if (/404|no such file|not found/i.test((err as Error).message)) return undefined;
      throw new EngineOperationError(`reading ${file} from ${image.slice(0, 19)} failed: ${(err as Error).message}`);
    }
    const extract = tarStream.extract();
    const read = new Promise<Buffer | undefined>((resolve, reject) => {
      let found: Buffer | undefined;
      extract.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => { chunks.push(c as Buffer); });
        stream.on('end', () => {
          if (header.type === 'file' && !found) found = Buffer.concat(chunks);
          next();
        });
        stream.on('error', reject);
      });
      extract.on('finish', () => resolve(found));
      extract.on('error', reject);
      (archive as unknown as Readable).on('error', reject);
    });
    (archive as unknown as Readable).pipe(extract as unknown as NodeJS.WritableStream);
    return await withTimeout(read, TIMEOUTS.quick, `docker cp ${file}`, () => (archive as unknown as Readable).destroy());
  } finally {
    await removeContainer(docker, container.id);
  }
}

/** The baked list of a local image; a mismatch with its digest label is an error. */
export async function readBakedList(docker: Docker, image: string, ref = image): Promise<BakedList | undefined> {
  const buf = await readFileFromImage(docker, image, PACKAGES_FILE);
  if (!buf) return undefined;
  return parseList(buf, ref, (await inspectImage(docker, image))?.Config?.Labels ?? {});
}

function notThere(message: string): boolean {
  return /manifest unknown|not found|does not exist|no such image|404/i.test(message);
}

async function fromLocal(docker: Docker, ref: string, source: 'local' | 'registry'): Promise<PublishedLookup> {
  const info = await inspectImage(docker, ref);
  if (!info) return { found: false, ref, why: `no image ${ref} in the local engine` };
  const list = await readBakedList(docker, info.Id, ref);
  if (!list) return { found: false, ref, why: `${ref} (${info.Id.slice(7, 19)}) has no ${PACKAGES_FILE} (built before stage policies)` };
  return { found: true, published: { ref, source, image: info.Id, size: info.Size, labels: info.Config?.Labels ?? {}, list } };
}

/**
 * Pulls `ref`, reads it, and puts the local tag back where it was (or removes
 * it): reading what is published changes nothing locally. "Not in the
 * registry" is an answer (no published image); any other pull error is thrown.
 */
async function fromRegistry(docker: Docker, ref: string): Promise<PublishedLookup> {
  const before = (await inspectImage(docker, ref))?.Id;
  try {
    await pullImage(docker, ref);
  } catch (err) {
    if (notThere((err as Error).message)) return { found: false, ref, why: `${ref} is not in the registry` };
    throw err;
  }
  try {
    return await fromLocal(docker, ref, 'registry');
  } finally {
    const after = (await inspectImage(docker, ref))?.Id;
    if (before && before !== after) await tagImage(docker, before, ref);
    else if (!before) await untag(docker, ref).catch(() => undefined);
  }
}

/** `host[:port]/...` or `localhost/...`, as Docker tells a registry host from a path component. */
export function hasRegistryHost(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first === 'localhost' || first.includes('.') || first.includes(':');
}

/**
 * The last published image of `ref`. `auto`: the local image if there is one,
 * else the registry; there a failed pull (unreachable, refused) is reported
 * in `why` and the build goes on unconstrained - `registry` makes it an error.
 */
export async function readPublished(docker: Docker, ref: string, from: PublishedFrom): Promise<PublishedLookup> {
  if (from === 'local') return fromLocal(docker, ref, 'local');
  if (from === 'registry') return fromRegistry(docker, ref);
  const local = await fromLocal(docker, ref, 'local');
  if (local.found || (await inspectImage(docker, ref))) return local;
  // A repository without a registry host means Docker Hub: never contacted unless asked for.
  if (!hasRegistryHost(ref)) return { found: false, ref, why: `no image ${ref} locally (its repository names no registry host; --published-from registry to pull it)` };
  try {
    const remote = await fromRegistry(docker, ref);
    return remote.found ? remote : { found: false, ref, why: `no image ${ref} locally or in the registry` };
  } catch (err) {
    return { found: false, ref, why: `no image ${ref} locally, and the registry could not be read (${(err as Error).message.split('\n')[0]}; --published-from registry makes this an error)` };
  }
}

// ---------------------------------------------------------------------------
// without an engine: the builder's store and the registry, read as OCI content

/** The file at `file` (no leading /) in a layer blob, or undefined. */
async function fileInLayer(blob: Readable, mediaType: string, file: string): Promise<Buffer | undefined> {
  const extract = tarStream.extract();
  const body = /gzip/.test(mediaType) ? blob.pipe(zlib.createGunzip()) : blob;
  let found: Buffer | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const wanted = header.type === 'file' && header.name.replace(/^\.?\//, '') === file;
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => { if (wanted) chunks.push(c as Buffer); });
      stream.on('end', () => { if (wanted) found = Buffer.concat(chunks); next(); });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    body.on('error', reject);
  });
  body.pipe(extract);
  await withTimeout(done, TIMEOUTS.quick, `reading ${file} from a layer`, () => blob.destroy());
  return found;
}

/** The baked list's bytes, read and checked against the image's packages-digest label. */
function parseList(buf: Buffer, ref: string, labels: Record<string, string>): BakedList {
  let list: BakedList;
  try {
    list = JSON.parse(buf.toString('utf8')) as BakedList;
  } catch (err) {
    throw new EngineOperationError(`${ref}: ${PACKAGES_FILE} is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(list.packages)) throw new EngineOperationError(`${ref}: ${PACKAGES_FILE} has no package list`);
  const digest = packagesDigest(list.packages);
  const label = labels[`${LABEL_PREFIX}.packages-digest`];
  if (label && label !== digest) throw new EngineOperationError(`${ref}: ${PACKAGES_FILE} does not match the image's packages-digest label (${digest} vs ${label})`);
  return list;
}

function configLabels(image: OciImage): Record<string, string> {
  return (JSON.parse(image.config.toString('utf8')) as { config?: { Labels?: Record<string, string> } }).config?.Labels ?? {};
}

/** The published list of an OCI image, from its top layer (Dockerfile.distribution's COPY). */
async function publishedOf(image: OciImage, ref: string, source: 'local' | 'registry', top: () => Promise<Readable>): Promise<PublishedLookup> {
  const labels = configLabels(image);
  const last = image.layers[image.layers.length - 1];
  const buf = last ? await fileInLayer(await top(), last.mediaType, PACKAGES_FILE.slice(1)) : undefined;
  if (!buf) return { found: false, ref, why: `${ref} (${image.configDescriptor.digest.slice(7, 19)}) has no ${PACKAGES_FILE} (built before stage policies)` };
  const size = image.layers.reduce((n, l) => n + l.size, 0);
  return { found: true, published: { ref, source, image: image.configDescriptor.digest, size, labels, list: parseList(buf, ref, labels) } };
}

/**
 * The last published image of `ref` with no engine: `local` is the builder's
 * store (every image it built), `registry` reads only the manifest, the config
 * and the top layer, never the whole image.
 */
export async function readPublishedOci(store: OciStore, ref: string, from: PublishedFrom, opts: RegistryOptions = {}): Promise<PublishedLookup> {
  const local = async (): Promise<PublishedLookup> => {
    const image = store.resolve(ref);
    if (!image) return { found: false, ref, why: `no image ${ref} in the builder's store` };
    return publishedOf(image, ref, 'local', async () => store.open(image.layers[image.layers.length - 1].digest));
  };
  const remote = async (): Promise<PublishedLookup> => {
    const r = parseReference(ref);
    const client = new RegistryClient(r.registry, opts);
    const m = await client.getManifest(r);
    if (!m) return { found: false, ref, why: `${ref} is not in the registry` };
    const manifest = JSON.parse(m.bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
    if (!manifest.config || !manifest.layers) return { found: false, ref, why: `${ref} is not a single image (an index): no published list read` };
    const config = await client.readBlob(r.repository, manifest.config);
    const image = imageFromManifest(m.bytes, config);
    return publishedOf(image, ref, 'registry', async () => {
      return Readable.from([await client.readBlob(r.repository, image.layers[image.layers.length - 1])]);
    });
  };
  if (from === 'local') return local();
  if (from === 'registry') return remote();
  const l = await local();
  if (l.found || store.resolve(ref)) return l;
  if (!hasRegistryHost(ref)) return { found: false, ref, why: `no image ${ref} in the builder's store (its repository names no registry host; --published-from registry to read it)` };
  try {
    const rr = await remote();
    return rr.found ? rr : { found: false, ref, why: `no image ${ref} in the builder's store or in the registry` };
  } catch (err) {
    return { found: false, ref, why: `no image ${ref} in the builder's store, and the registry could not be read (${(err as Error).message.split('\n')[0]}; --published-from registry makes this an error)` };
  }
}
