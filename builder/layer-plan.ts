import { chainKeys, LAYER_KEYS_LABEL, type BaseImage } from './assemble.js';
import { bareKey, bestReuse, DELTA_MARK, deltaBases, MAX_DELTA_SHARE, planDelta, readLayerState, saveLayerState, type LabelledImage } from './delta.js';
import type { LayerContribution } from './merge.js';
import type { LayerDescriptor } from './oci/model.js';
import type { OciStore } from './oci/store.js';
import { tarSize, type TarEntry } from './tar.js';

/**
 * Which image layers a build takes from the builder's store as they are and
 * which it packs: the longest run of package layers an image in the store
 * already holds is reused; of the rest, the top layer may go as a delta on a
 * full layer an earlier image holds (builder/delta.ts); everything else is
 * packed whole.
 */

export interface PlannedLayers {
  /** image layers the store holds, bottom first */
  reused: Array<{ name: string; layer: LayerDescriptor; description: string }>;
  /** image layers to send, in order above the reused ones; `key` names the layer tar's content (the store keeps blobs by it) */
  sent: Array<{ name: string; entries: TarEntry[]; description: string; key: string }>;
  /** the layer-keys label of the new image: one entry per package image layer */
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

/** The image history's line for a package layer sent whole, sent as a delta, or serving as a delta's base. */
const wholeHistory = (c: LayerContribution) => `${c.packages.length} package versions`;
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

/** How the image entries of a reused run map to this build's layers, for the image history. */
function describeReused(entries: string[], keys: string[], contributions: LayerContribution[]): Array<{ name: string; description: string }> {
  let i = -1;
  return entries.map((e) => {
    if (!e.startsWith(DELTA_MARK)) i++;
    const c = contributions[i];
    if (e.startsWith(DELTA_MARK)) return { name: c.name, description: deltaHistory(c) };
    return { name: c.name, description: bareKey(e) === keys[i] ? wholeHistory(c) : BASE_HISTORY };
  });
}

export async function planLayers(store: OciStore, base: BaseImage, contributions: LayerContribution[], opts: PlanOptions): Promise<PlannedLayers> {
  const keys = chainKeys(base.id, contributions.map((c) => c.key));
  const n = contributions.length;
  // listed only if sent
  const whole = (from: number) => contributions.slice(from).map((c) => ({ name: c.name, get entries() { return c.entries; }, description: wholeHistory(c), key: c.key }));
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
      reused: describeReused(entries, keys, contributions).map((d, j) => ({ ...d, layer: reusedLayers[j] })),
      sent: whole(best.count),
      labelEntries: [...entries, ...keys.slice(best.count)],
    };
  }
  if (opts.delta && best.count < n) plan = withDelta(store, base, contributions, keys, images, opts.cacheDir) ?? plan;
  remember(plan, keys, contributions, opts.cacheDir);
  return plan;
}

/** The top layer as a delta on the base that gives the smallest one, when one is small enough. */
function withDelta(store: OciStore, base: BaseImage, contributions: LayerContribution[], keys: string[], images: LabelledImage[], cacheDir: string | undefined): PlannedLayers | undefined {
  const n = contributions.length;
  const top = contributions[n - 1];
  let best: { entries: TarEntry[]; bytes: number; from: (typeof candidates)[number]; plan: NonNullable<ReturnType<typeof planDelta>> } | undefined;
  const candidates = deltaBases(images, n > 1 ? keys[n - 2] : undefined, keys[n - 1]);
  const packages = Object.keys(top.state.packages).length;
  for (const cand of candidates) {
    const state = readLayerState(cacheDir, cand.key);
    const plan = state && planDelta(state.packages, top.state.packages);
    // listing a delta costs as much as listing the layer: first a cheap look at how much of the layer it sends
    if (!plan || plan.send.length > packages * MAX_DELTA_SHARE) continue;
    const entries = top.deltaEntries(plan);
    const bytes = tarSize(entries);
    if (!best || bytes < best.bytes) best = { entries, bytes, from: cand, plan };
  }
  if (!best) return undefined;
  const fullBytes = tarSize(top.entries);
  if (best.bytes > fullBytes * MAX_DELTA_SHARE) return undefined;
  const layers = packageLayers(store, base, best.from.image, best.from.entries.length);
  if (!layers) return undefined;
  const reused = describeReused(best.from.entries, keys, contributions).map((d, j) => ({ ...d, layer: layers[j] }));
  return {
    reused,
    // a delta's bytes follow from the full layer it goes on and the new layer's content
    sent: [{ name: top.name, entries: best.entries, description: deltaHistory(top), key: `${best.from.key}${DELTA_MARK}${top.key}` }],
    labelEntries: [...best.from.entries, `${DELTA_MARK}${keys[n - 1]}`],
    delta: { base: best.from.key, added: best.plan.added, changed: best.plan.changed, removed: best.plan.removed, bytes: best.bytes, fullBytes },
  };
}

/** Keeps what each whole layer of the image holds, so a later build can send a delta against it. */
function remember(plan: PlannedLayers, keys: string[], contributions: LayerContribution[], cacheDir: string | undefined): void {
  plan.labelEntries.forEach((e) => {
    const i = keys.indexOf(e);
    if (i >= 0) saveLayerState(cacheDir, e, contributions[i].state, { onlyIfMissing: true });
  });
}
