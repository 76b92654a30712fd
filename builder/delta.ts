import fs from 'node:fs';
import path from 'node:path';
import { byteCompare } from '../server/packages/source.js';
import { keepRecent, markUsed, writeCacheFile } from './cache-files.js';
import { RECIPE_RULE } from './zip-recipe.js';

/**
 * Delta layers. A distribution's top package layer changes often (a snapshot
 * gets new package builds many times a day) and is large: sent whole, one
 * changed package costs the engine the unpacking of every file of the layer,
 * and every node that pulls the image the download of all of it.
 *
 * When the engine holds an image whose layers below the top are the ones this
 * build needs, and whose top package layer was sent whole (the base), the
 * build reuses all of them and sends only what differs from the base: the
 * changed and added packages, whiteouts for the removed ones, and the new
 * baked index. Deltas are always against the base, never stacked, so an image
 * has at most one delta layer, and a delta grown past a quarter of the full
 * layer is replaced by the full layer again.
 *
 * A delta image serves exactly the files of the full one; only its layers
 * differ. Its image ID depends on which base the engine held, so a build that
 * must give the same image ID for the same input on any machine uses
 * --no-delta (--no-cache implies it).
 */

/** The layer format's marks (OCI image spec, "whiteouts"): a removed path, a folder whose lower contents are hidden. */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARK = '.wh..wh..opq';

/** A delta grown past this part of the full layer is not worth its wasted bytes: the full layer is sent. */
export const MAX_DELTA_SHARE = 0.25;

/** (2: zips as recipes, whose entries a delta takes from its base) */
const STATE_FORMAT = `epr-layer-state/2 ${RECIPE_RULE}`;

/** What a full layer holds: each package's path in the layer and a digest of its kind and bytes. */
export interface LayerState {
  format: string;
  layer: string;
  /** path in the layer -> `<kind>:<content digest>` */
  packages: Record<string, string>;
  /** a layer split into parts (builder/layer-split.ts): the content keys of its image layers, parts and index part, bottom first */
  imageLayers?: string[];
}

function stateFile(cacheDir: string, chainKey: string): string {
  return path.join(cacheDir, 'layer-states', `${chainKey}.json`);
}

/** Layer states kept: the most recently written; a base older than these is rarely still the best one. */
export const KEEP_LAYER_STATES = 64;

/** Remembers what the full layer named by `chainKey` holds; a cache that cannot be written only costs deltas. */
export function saveLayerState(cacheDir: string | undefined, chainKey: string, state: LayerState, opts: { onlyIfMissing?: boolean } = {}): void {
  if (!cacheDir) return;
  const file = stateFile(cacheDir, chainKey);
  if (opts.onlyIfMissing && fs.existsSync(file)) {
    markUsed(file);
    return;
  }
  if (writeCacheFile(file, JSON.stringify(state)) === undefined) keepRecent(path.dirname(file), '.json', KEEP_LAYER_STATES);
}

export function readLayerState(cacheDir: string | undefined, chainKey: string): LayerState | undefined {
  if (!cacheDir) return undefined;
  try {
    const s = JSON.parse(fs.readFileSync(stateFile(cacheDir, chainKey), 'utf8')) as LayerState;
    return s.format === STATE_FORMAT && s.packages && typeof s.packages === 'object' ? s : undefined;
  } catch {
    return undefined;
  }
}

export function layerState(layer: string, packages: Array<{ path: string; kind: string; digest: string }>): LayerState {
  return { format: STATE_FORMAT, layer, packages: Object.fromEntries(packages.map((p) => [p.path, `${p.kind}:${p.digest}`])) };
}

export interface DeltaPlan {
  /** package paths whose files the delta carries (added or changed) */
  send: string[];
  /** changed folder packages: their folder is marked opaque, so files the base had and the new one lacks are gone */
  opaque: string[];
  /** paths (packages, or the highest folder left with no package) the delta removes */
  remove: string[];
  changed: number;
  added: number;
  removed: number;
}

/**
 * What turns the base's packages into `now`'s, or undefined when a delta
 * cannot say it (a path that was a package of another kind, or a package
 * inside another's folder).
 */
export function planDelta(base: Record<string, string>, now: Record<string, string>): DeltaPlan | undefined {
  const send: string[] = [];
  const opaque: string[] = [];
  const gone: string[] = [];
  let changed = 0;
  let added = 0;
  for (const [p, digest] of Object.entries(now)) {
    const was = base[p];
    if (was === digest) continue;
    if (was !== undefined && was.split(':')[0] !== digest.split(':')[0]) return undefined;
    send.push(p);
    if (was === undefined) added++;
    else {
      changed++;
      if (digest.startsWith('directory:')) opaque.push(p);
    }
  }
  for (const p of Object.keys(base)) if (!(p in now)) gone.push(p);

  const ancestors = (p: string) => {
    const out: string[] = [];
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) out.push(p.slice(0, i));
    return out;
  };
  const paths = new Set([...Object.keys(base), ...Object.keys(now)]);
  for (const p of paths) if (ancestors(p).some((a) => paths.has(a))) return undefined;

  // a removed package goes with the highest folder that holds nothing the new layer has
  const holding = new Set(Object.keys(now).flatMap(ancestors));
  const remove = new Set<string>();
  for (const p of gone) {
    let top = p;
    for (const dir of ancestors(p)) {
      if (holding.has(dir)) break;
      top = dir;
    }
    remove.add(top);
  }
  // a zip goes with its signature
  for (const p of gone) if (p.endsWith('.zip') && remove.has(p)) remove.add(`${p}.sig`);
  const removeList = [...remove].filter((r) => !ancestors(r).some((a) => remove.has(a))).sort(byteCompare);
  return { send: send.sort(byteCompare), opaque: opaque.sort(byteCompare), remove: removeList, changed, added, removed: gone.length };
}

/** The whiteout entry that removes `p` (a path inside `top`). */
export function whiteoutName(top: string, p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? `${top}/${WHITEOUT_PREFIX}${p}` : `${top}/${p.slice(0, i)}/${WHITEOUT_PREFIX}${p.slice(i + 1)}`;
}

/** Where a delta's top package layer starts: the chain key below it, and the full layer above it the engine holds. */
export interface DeltaBase {
  /** chain key of the full layer the delta goes on */
  key: string;
  /** the image holding it, and its package layers (diff IDs) up to and including that base */
  image: string;
  entries: string[];
}

/**
 * The image layer entries of the images in the engine, as their layer-keys
 * label lists them: one chain key per package layer, a delta's marked with
 * DELTA_MARK. The same chain key means the same files from the base image up.
 */
export const DELTA_MARK = '+';

export const bareKey = (entry: string) => (entry.startsWith(DELTA_MARK) ? entry.slice(DELTA_MARK.length) : entry);

export interface LabelledImage { id: string; entries: string[] }

/**
 * The most of `keys` (chain keys of this build's package layers) an image
 * already holds: `count` package layers, made of the image's first `layers`
 * package layers (more than count when a delta is among them).
 */
export function bestReuse(images: LabelledImage[], keys: string[]): { count: number; layers: number; image?: LabelledImage } {
  let best: { count: number; layers: number; image?: LabelledImage } = { count: 0, layers: 0 };
  const at = new Map(keys.map((k, i) => [k, i]));
  for (const img of images) {
    img.entries.forEach((e, j) => {
      const i = at.get(bareKey(e));
      if (i !== undefined && i + 1 > best.count) best = { count: i + 1, layers: j + 1, image: img };
    });
  }
  return best;
}

/**
 * Full top layers an image holds right above this build's lower layers
 * (`below`: the chain key of the image layer under the top layer's, undefined
 * when the top layer is the only one): the bases a delta for the top layer
 * could go on. A full layer is one image layer, or, split, its parts and its
 * index part: `spanOf` says how many image layers the full layer whose last
 * image layer has that chain key spans (undefined: no full layer ends there).
 */
export function deltaBases(images: LabelledImage[], below: string | undefined, top: string, spanOf: (chainKey: string) => number | undefined = () => 1): DeltaBase[] {
  const out = new Map<string, DeltaBase>();
  for (const img of images) {
    const j = below === undefined ? -1 : img.entries.findIndex((e) => bareKey(e) === below);
    if (below !== undefined && j < 0) continue;
    for (let e = j + 1; e < img.entries.length; e++) {
      const entry = img.entries[e];
      if (entry.startsWith(DELTA_MARK)) break;
      if (spanOf(entry) !== e - j) continue;
      if (entry !== top && !out.has(entry)) out.set(entry, { key: entry, image: img.id, entries: img.entries.slice(0, e + 1) });
      break;
    }
  }
  return [...out.values()];
}

/** One line for the build output: the delta's bytes against those of the image layers it stands for. */
export function describeDelta(d: { added: number; changed: number; removed: number; bytes: number; fullBytes: number }): string {
  return `delta +${d.added} ~${d.changed} -${d.removed} packages, ${(d.bytes / 1e6).toFixed(1)} of ${(d.fullBytes / 1e6).toFixed(1)} MB`;
}
