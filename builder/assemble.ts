import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import tarStream from 'tar-stream';
import { EngineOperationError, followStream, inspectImage, TIMEOUTS, withTimeout } from './image.js';
import { fileHeader, tarSize, writeTar, type TarEntry } from './tar.js';
import { writeCacheFile } from './cache-files.js';

/**
 * A distribution image put together from its layers and loaded into the
 * engine with `docker load`, instead of built by `docker build`:
 *
 * - A package layer is streamed once, straight from the package folders, into
 *   the engine, which unpacks it once. (`docker build` with `ADD layer.tar`
 *   sends it as context, unpacks it into a container, then packs and unpacks
 *   it again to commit: about twice the time for the same layer.)
 * - Layers the engine holds already are not sent at all: the base image's
 *   layers, and every package layer of a prefix an earlier build made (found
 *   by the chained layer keys each image carries as a label; see
 *   builder/layer-plan.ts, and builder/delta.ts for a top layer sent as a
 *   delta). `docker load` reads a layer's file only when its chain is not in
 *   the layer store.
 *
 * The image config is the base image's own config (read once with `docker
 * save` and kept in the cache) with the package layers added, then what
 * Dockerfile.distribution adds (builder/dockerfile.ts): one top layer with its
 * COPY, its ENV and LABEL, so the image runs exactly as one built FROM the
 * base. Its creation time is the commit's, so the same input gives the same
 * image ID.
 */

export const LAYER_KEYS_LABEL = 'org.elastic.package-registry.layer-keys';

export interface BaseImage {
  id: string;
  /** the base image's config, exactly as the engine holds it */
  config: ImageConfig;
  diffIds: string[];
}

interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config: { Env?: string[]; Labels?: Record<string, string> | null; [k: string]: unknown };
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; comment?: string; empty_layer?: boolean }>;
  [k: string]: unknown;
}

/** The raw config of `ref` (from `docker save`, read to the end, kept by image id in `cacheDir`). */
export async function readBaseImage(docker: Docker, ref: string, cacheDir: string | undefined): Promise<BaseImage> {
  const info = await inspectImage(docker, ref);
  if (!info) throw new EngineOperationError(`base image ${ref} is not in the engine`);
  const hex = info.Id.replace(/^sha256:/, '');
  const cached = cacheDir ? path.join(cacheDir, 'image-configs', `${hex}.json`) : undefined;
  let raw: Buffer | undefined;
  if (cached && fs.existsSync(cached)) {
    raw = fs.readFileSync(cached);
    if (crypto.createHash('sha256').update(raw).digest('hex') !== hex) raw = undefined;
  }
  if (!raw) {
    raw = await savedConfig(docker, info.Id, hex);
    // an unwritable cache only costs time
    if (cached) writeCacheFile(cached, raw);
  }
  const config = JSON.parse(raw.toString('utf8')) as ImageConfig;
  return { id: info.Id, config, diffIds: config.rootfs.diff_ids };
}

async function savedConfig(docker: Docker, id: string, hex: string): Promise<Buffer> {
  const stream = await withTimeout(docker.getImage(id).get() as unknown as Promise<Readable>, TIMEOUTS.quick, `docker save ${id}`);
  const extract = tarStream.extract();
  let found: Buffer | undefined;
  extract.on('entry', (h, body, next) => {
    const chunks: Buffer[] = [];
    const wanted = h.name === `${hex}.json` || h.name === `blobs/sha256/${hex}`;
    body.on('data', (c: unknown) => { if (wanted) chunks.push(c as Buffer); });
    body.on('end', () => { if (wanted) found = Buffer.concat(chunks); next(); });
    body.resume();
  });
  await withTimeout(new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    stream.on('error', reject);
    stream.pipe(extract);
  }), TIMEOUTS.save, `docker save ${id}`, () => stream.destroy());
  if (!found || crypto.createHash('sha256').update(found).digest('hex') !== hex) throw new EngineOperationError(`docker save ${id}: the image config is not in the saved image`);
  return found;
}

/** Chained keys: each names a layer and everything below it, from the base image up. */
export function chainKeys(baseId: string, layerKeys: string[]): string[] {
  const out: string[] = [];
  let prev = baseId;
  for (const k of layerKeys) {
    prev = crypto.createHash('sha256').update(`${prev}\n${k}`).digest('hex');
    out.push(prev);
  }
  return out;
}

export interface AssembleInput {
  base: BaseImage;
  /** package image layers already in the engine (diff IDs), bottom first (builder/layer-plan.ts) */
  reused: Array<{ name: string; diffId: string; description: string }>;
  /** package layers to send, in order above the reused ones */
  layers: Array<{ name: string; entries: TarEntry[]; description: string }>;
  /** the top layer (Dockerfile.distribution's COPY), environment and history of its instructions */
  top: TarEntry[];
  env: Array<[string, string]>;
  topHistory: Array<{ createdBy: string; emptyLayer: boolean }>;
  labels: Record<string, string>;
  /** image creation time: the distribution's commit time, so that the same input gives the same image ID */
  created: string;
  /** the temporary tag the loaded image gets */
  tag: string;
  onProgress?: (line: string) => void;
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

/** Builds the image config; returns its exact bytes (the image ID is their sha256). */
export function imageConfig(input: AssembleInput, newDiffIds: string[], topDiffId: string): Buffer {
  const base = input.base.config;
  const names = new Set(input.env.map(([k]) => k));
  const history = [
    ...(base.history ?? []),
    ...input.reused.map((l) => ({ created: input.created, created_by: `package layer ${l.name}: ${l.description}` })),
    ...input.layers.map((l) => ({ created: input.created, created_by: `package layer ${l.name}: ${l.description}` })),
    ...input.topHistory.map((h) => ({ created: input.created, created_by: `Dockerfile.distribution: ${h.createdBy}`, ...(h.emptyLayer ? { empty_layer: true } : {}) })),
  ];
  const cfg: ImageConfig = {
    architecture: base.architecture,
    os: base.os,
    ...(base.variant ? { variant: base.variant } : {}),
    created: input.created,
    config: {
      ...base.config,
      Env: [...(base.config.Env ?? []).filter((e) => !names.has(e.split('=')[0])), ...input.env.map(([k, v]) => `${k}=${v}`)],
      Labels: { ...(base.config.Labels ?? {}), ...input.labels },
    },
    rootfs: { type: 'layers', diff_ids: [...input.base.diffIds, ...input.reused.map((l) => l.diffId), ...newDiffIds, topDiffId] },
    history,
  };
  return Buffer.from(JSON.stringify(cfg));
}

/**
 * Streams the image into `docker load`: the new layers (each hashed on the
 * way for its diff ID), then the config and the manifest naming every layer.
 * Layers not sent are named by files the engine never opens, because it
 * already holds them. Resolves to the image ID.
 */
export async function assembleImage(docker: Docker, input: AssembleInput): Promise<string> {
  const body = new PassThrough({ highWaterMark: 4 << 20 });
  const write = writer(body);
  const writeEntry = async (name: string, size: number, fill: (hash: crypto.Hash) => Promise<void>) => {
    await write(fileHeader(name, size));
    const h = crypto.createHash('sha256');
    await fill(h);
    const pad = (512 - (size % 512)) % 512;
    if (pad) await write(Buffer.alloc(pad));
    return `sha256:${h.digest('hex')}`;
  };
  const produce = async (): Promise<string> => {
    const diffIds: string[] = [];
    const files: string[] = [];
    for (const [i, l] of input.layers.entries()) {
      const size = tarSize(l.entries);
      input.onProgress?.(`layer ${l.name}: sending ${(size / 1e6).toFixed(1)} MB`);
      const name = `new-${i}/layer.tar`;
      diffIds.push(await writeEntry(name, size, (h) => writeTar(l.entries, write, h)));
      files.push(name);
    }
    const topDiff = await writeEntry('top/layer.tar', tarSize(input.top), (h) => writeTar(input.top, write, h));
    const config = imageConfig(input, diffIds, topDiff);
    const id = crypto.createHash('sha256').update(config).digest('hex');
    await writeEntry(`${id}.json`, config.length, async () => { await write(config); });
    const held = [...input.base.diffIds, ...input.reused.map((l) => l.diffId)].map((_, i) => `held-${i}/layer.tar`);
    const manifest = Buffer.from(JSON.stringify([{ Config: `${id}.json`, RepoTags: [input.tag], Layers: [...held, ...files, 'top/layer.tar'] }]));
    await writeEntry('manifest.json', manifest.length, async () => { await write(manifest); });
    await write(Buffer.alloc(1024));
    body.end();
    return `sha256:${id}`;
  };

  const loaded = (async () => {
    const stream = await withTimeout(docker.loadImage(body, { quiet: true }) as unknown as Promise<Readable>, TIMEOUTS.load, 'docker load');
    return followStream(stream, 'docker load', TIMEOUTS.load);
  })();
  let id: string;
  try {
    [id] = await Promise.all([produce(), loaded]);
  } catch (err) {
    body.destroy();
    await loaded.catch(() => undefined);
    if (/no such file|layer\.tar/i.test((err as Error).message)) {
      throw new EngineOperationError(`${(err as Error).message} (the engine must keep image layers in its own layer store, as docker.io 20.10 to 28 do by default; the containerd image store is not supported)`);
    }
    throw err;
  }
  const info = await inspectImage(docker, input.tag);
  if (!info || info.Id !== id) throw new EngineOperationError(`docker load: expected ${input.tag} to be ${id}, found ${info?.Id ?? 'nothing'}`);
  return id;
}
