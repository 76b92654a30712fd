import { chainKeys, LAYER_KEYS_LABEL, type BaseImage } from './assemble.js';
import { bareKey, bestReuse, DELTA_MARK, deltaBases, MAX_DELTA_SHARE, planDelta, readLayerState, saveLayerState, type LabelledImage } from './delta.js';
import { imageLayerSizes, type ImageLayerPart, type LayerContribution } from './merge.js';
import type { LayerDescriptor } from './oci/model.js';
import type { OciStore } from './oci/store.js';
import { tarSize, type TarEntry } from './tar.js';

/**
 * Which image layers a build takes from the builder's store as they are and
 * which it packs: the longest run of package image layers an image in the
 * store already holds is reused; of the rest, the top layer may go as a delta
 * on a full layer an earlier image holds (builder/delta.ts); everything else
 * is sent whole, and of that, every image layer whose content key the store
 * knows (an unchanged part above a changed one) is taken from the store, not
 * packed again (assemble.ts).
 */

export interface PlannedLayers {
  /** image layers the store holds, bottom first */
  reused: Array<{ name: string; layer: LayerDescriptor; description: string }>;
  /** image layers to send, in order above the reused ones; `key` names the layer tar's content (the store keeps blobs by it) */
  sent: Array<{ name: string; entries: TarEntry[]; description: string; key: string }>;
  /** the layer-keys label of the new image: one entry per package image layer (a split layer has several: its parts and its index part) */
  labelEntries: string[];
  /** the top layer went as a delta */
  delta?: { base: string; added: number; changed: number; removed: number; bytes: number; fullBytes: number };
}

export interface PlanOptions {
  /** send everything (--no-cache) */
  reuse: boolean;
  /** allow a delta for the top layer (not with --no-delta) */
  delta: boolean;
  cacheDir?: string;
}

/** This build's package image layers, bottom first: each layer's parts and index part, or its one whole image layer. */
interface Unit { c: LayerContribution; part: ImageLayerPart; at: number; of: number }

function unitsOf(contributions: LayerContribution[]): Unit[] {
  return contributions.flatMap((c) => c.imageLayers.map((part, at) => ({ c, part, at, of: c.imageLayers.length })));
}

/** The image history's line for a package image layer sent whole, sent as a delta, or serving as a delta's base. */
function wholeHistory(u: Unit): string {
  const { c, part } = u;
  if (part.role === 'whole') return `${c.packages.length} package versions`;
  if (part.role === 'index') return `its baked index (${c.packages.length} package versions)`;
  return `part ${u.at + 1} of ${u.of - 1} (from ${part.bound}): ${part.packages} package versions`;
}
const deltaHistory = (c: LayerContribution) => `${c.packages.length} package versions (delta on the layer below)`;
const BASE_HISTORY = 'base of the delta above';

/** The store's images with layer keys (the annotation copies the image label), by manifest digest. */
export function labelledImages(store: OciStore): LabelledImage[] {
  const seen = new Set<string>();
  const out: LabelledImage[] = [];
  for (const e of store.entries()) {
    const keys = e.annotations[LAYER_KEYS_LABEL];
    if (!keys || seen.has(e.digest)) continue;
    seen.add(e.digest);
    out.push({ id: e.digest, entries: keys.split(',').filter(Boolean) });
  }
  return out;
}

/** The package layers of store image `image` above the base, the first `count` of them; undefined when it is not on this base. */
function packageLayers(store: OciStore, base: BaseImage, image: string, count: number): LayerDescriptor[] | undefined {
  let layers: LayerDescriptor[];
  try { layers = store.image(image).layers; } catch { return undefined; }
  if (layers.length < base.diffIds.length + count || base.diffIds.some((d, i) => layers[i].diffId !== d)) return undefined;
  const out = layers.slice(base.diffIds.length, base.diffIds.length + count);
  return out.every((l) => store.has(l.digest)) ? out : undefined;
}

/** How the image entries of a reused run map to this build's image layers, for the image history. */
function describeReused(entries: string[], keys: string[], units: Unit[]): Array<{ name: string; description: string }> {
  const at = new Map(keys.map((k, i) => [k, i]));
  const top = units[units.length - 1].c;
  return entries.map((e) => {
    if (e.startsWith(DELTA_MARK)) return { name: top.name, description: deltaHistory(top) };
    const i = at.get(e);
    return i === undefined ? { name: top.name, description: BASE_HISTORY } : { name: units[i].c.name, description: wholeHistory(units[i]) };
  });
}

export async function planLayers(store: OciStore, base: BaseImage, contributions: LayerContribution[], opts: PlanOptions): Promise<PlannedLayers> {
  const units = unitsOf(contributions);
  const keys = chainKeys(base.id, units.map((u) => u.part.key));
  const n = units.length;
  // listed only if sent
  const whole = (from: number) => units.slice(from).map((u) => ({ name: u.c.name, get entries() { return u.part.entries; }, description: wholeHistory(u), key: u.part.key }));
  let plan: PlannedLayers = { reused: [], sent: whole(0), labelEntries: keys };
  if (!opts.reuse) return plan;

  // without deltas, only the layers below an image's first delta are taken
  const wholeOnly = (e: string[]) => {
    const cut = e.findIndex((x) => x.startsWith(DELTA_MARK));
    return cut < 0 ? e : e.slice(0, cut);
  };
  const images = labelledImages(store).map((img) => (opts.delta ? img : { ...img, entries: wholeOnly(img.entries) }));
  const best = bestReuse(images, keys);
  const reusedLayers = best.image ? packageLayers(store, base, best.image.id, best.layers) : [];
  if (best.image && reusedLayers) {
    const entries = best.image.entries.slice(0, best.layers);
    plan = {
      reused: describeReused(entries, keys, units).map((d, j) => ({ ...d, layer: reusedLayers[j] })),
      // the layers above: each is taken from the store by its content key when an earlier build packed it (assemble.ts)
      sent: whole(best.count),
      labelEntries: [...entries, ...keys.slice(best.count)],
    };
  }
  if (opts.delta && best.count < n) plan = withDelta(store, base, contributions, units, keys, images, opts.cacheDir) ?? plan;
  remember(plan, keys, units, opts.cacheDir);
  return plan;
}

/**
 * The top layer as a delta on the base that gives the smallest one, when one
 * is small enough. The delta goes above all the base's image layers of the
 * top layer (its parts and index part, when it was split) and carries the
 * packages changed in any part and the whole new baked index: an image still
 * has at most one delta, at the top, and a delta still needs nothing but the
 * base's package list.
 */
function withDelta(store: OciStore, base: BaseImage, contributions: LayerContribution[], units: Unit[], keys: string[], images: LabelledImage[], cacheDir: string | undefined): PlannedLayers | undefined {
  const n = units.length;
  const top = contributions[contributions.length - 1];
  const start = n - top.imageLayers.length;
  const spanOf = (k: string) => {
    const st = readLayerState(cacheDir, k);
    return st ? (st.imageLayers?.length ?? 1) : undefined;
  };
  let best: { entries: TarEntry[]; bytes: number; from: (typeof candidates)[number]; plan: NonNullable<ReturnType<typeof planDelta>>; baseLayers: string[] } | undefined;
  const candidates = deltaBases(images, start > 0 ? keys[start - 1] : undefined, keys[n - 1], spanOf);
  const packages = Object.keys(top.state.packages).length;
  for (const cand of candidates) {
    const state = readLayerState(cacheDir, cand.key);
    const plan = state && planDelta(state.packages, top.state.packages);
    // listing a delta costs as much as listing the layer: first a cheap look at how much of the layer it sends
    if (!plan || plan.send.length > packages * MAX_DELTA_SHARE) continue;
    const entries = top.deltaEntries(plan);
    const bytes = tarSize(entries);
    if (!best || bytes < best.bytes) best = { entries, bytes, from: cand, plan, baseLayers: state.imageLayers ?? [] };
  }
  if (!best) return undefined;
  // what the delta stands for: the top layer's image layers the base does not hold (with a stable split, the changed parts and the index part)
  const held = new Set(best.baseLayers);
  const fullBytes = top.imageLayers.filter((p) => !held.has(p.key)).reduce((sum, p) => sum + imageLayerSizes(p, cacheDir).tarBytes, 0);
  if (best.bytes > fullBytes * MAX_DELTA_SHARE) return undefined;
  const layers = packageLayers(store, base, best.from.image, best.from.entries.length);
  if (!layers) return undefined;
  const reused = describeReused(best.from.entries, keys, units).map((d, j) => ({ ...d, layer: layers[j] }));
  return {
    reused,
    // a delta's bytes follow from the full layer it goes on and the new layer's content
    sent: [{ name: top.name, entries: best.entries, description: deltaHistory(top), key: `${best.from.key}${DELTA_MARK}${top.key}` }],
    labelEntries: [...best.from.entries, `${DELTA_MARK}${keys[n - 1]}`],
    delta: { base: best.from.key, added: best.plan.added, changed: best.plan.changed, removed: best.plan.removed, bytes: best.bytes, fullBytes },
  };
}

/**
 * Keeps what each full layer of the image holds, so a later build can send a
 * delta against it: under the chain key of its last image layer, with the
 * content keys of all of them (how many image layers the full layer spans).
 */
function remember(plan: PlannedLayers, keys: string[], units: Unit[], cacheDir: string | undefined): void {
  const held = new Set(plan.labelEntries);
  units.forEach((u, i) => {
    if (u.at !== u.of - 1 || !held.has(keys[i])) return;
    saveLayerState(cacheDir, keys[i], { ...u.c.state, imageLayers: u.c.imageLayers.map((p) => p.key) }, { onlyIfMissing: true });
  });
}
