import crypto from 'node:crypto';
import { writeTar, type TarEntry } from './tar.js';
import type { LayerDescriptor, OciImage } from './oci/model.js';
import type { OciStore } from './oci/store.js';

/**
 * A distribution image put together in the builder's store (builder/oci),
 * instead of built by `docker build`:
 *
 * - A package layer is packed once, straight from the package folders, into
 *   a compressed blob of the store; the engine, a registry or a bundle then
 *   get it from there (builder/oci/engine.ts, registry.ts, bundle.ts).
 * - Layers the store holds already are not packed again: the base image's,
 *   and every package layer of a prefix an earlier build made (found by the
 *   chained layer keys each image carries; see builder/layer-plan.ts, and
 *   builder/delta.ts for a top layer sent as a delta).
 *
 * The image config is the base image's own config with the package layers
 * added, then what Dockerfile.distribution adds (builder/dockerfile.ts): one
 * top layer with its COPY, its ENV and LABEL, so the image runs exactly as
 * one built FROM the base. Its creation time is the commit's, so the same
 * input gives the same image ID.
 */

export const LAYER_KEYS_LABEL = 'org.elastic.package-registry.layer-keys';

export interface BaseImage {
  /** the image ID: its config's digest */
  id: string;
  /** the base image's config, exactly as the engine holds it */
  config: ImageConfig;
  diffIds: string[];
  /** the base image in the store */
  image: OciImage;
}

/** The base image of a build, from its store image. */
export function baseImageOf(image: OciImage): BaseImage {
  const config = JSON.parse(image.config.toString('utf8')) as ImageConfig;
  return { id: image.configDescriptor.digest, config, diffIds: config.rootfs.diff_ids, image };
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
  /** package image layers already in the store, bottom first (builder/layer-plan.ts) */
  reused: Array<{ name: string; layer: LayerDescriptor; description: string }>;
  /** package layers to pack, in order above the reused ones; `key` names their content (the same key, the same blob) */
  layers: Array<{ name: string; entries: TarEntry[]; description: string; key?: string }>;
  /** the top layer (Dockerfile.distribution's COPY), environment and history of its instructions */
  top: TarEntry[];
  env: Array<[string, string]>;
  topHistory: Array<{ createdBy: string; emptyLayer: boolean }>;
  labels: Record<string, string>;
  /** image creation time: the distribution's commit time, so that the same input gives the same image ID */
  created: string;
  onProgress?: (line: string) => void;
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
    rootfs: { type: 'layers', diff_ids: [...input.base.diffIds, ...input.reused.map((l) => l.layer.diffId), ...newDiffIds, topDiffId] },
    history,
  };
  return Buffer.from(JSON.stringify(cfg));
}

/**
 * Packs the new layers into the store (each layer whose key the store knows
 * is taken from it instead), then the top layer, the config and the
 * manifest. Returns the store image.
 */
export async function composeImage(store: OciStore, input: AssembleInput): Promise<{ image: OciImage; packed: number; packedBytes: number }> {
  const fresh: LayerDescriptor[] = [];
  let packed = 0;
  let packedBytes = 0;
  for (const l of input.layers) {
    const known = l.key ? store.layerFor(l.key) : undefined;
    if (known) { fresh.push(known); continue; }
    input.onProgress?.(`layer ${l.name}: packing ${l.entries.length} entries`);
    const layer = await store.writeLayer((write) => writeTar(l.entries, write));
    if (l.key) store.rememberLayer(l.key, layer);
    packed++;
    packedBytes += layer.size;
    fresh.push(layer);
  }
  const top = await store.writeLayer((write) => writeTar(input.top, write));
  const config = imageConfig(input, fresh.map((l) => l.diffId), top.diffId);
  const image = store.putImage(config, [...input.base.image.layers, ...input.reused.map((l) => l.layer), ...fresh, top]);
  return { image, packed, packedBytes };
}
