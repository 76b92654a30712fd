import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BAKED_INDEX_FILE, bakedEntry, bakedIndexBytes } from '../server/packages/baked.js';
import { mergeFirstWins } from '../server/packages/precedence.js';
import { byteCompare, relativePath } from '../server/packages/source.js';
import { formatProblem } from '../server/packages/validate.js';
import { signatureProblem, type Package } from '../server/packages/package.js';
import { LayerCache, loadLayerPackages, modelDigest, unchangedSinceCache, type LoadedPackage } from './package-cache.js';
import { layerState, OPAQUE_MARK, whiteoutName, type DeltaPlan, type LayerState } from './delta.js';
import { FIXED_MTIME, linkRepeats, tarSize, withParents, type TarEntry } from './tar.js';
import { keepRecent, markUsed, writeCacheFile } from './cache-files.js';
import { splitUnits, type SplitUnit } from './layer-split.js';
import type { MaterialisedLayer } from './sources.js';
import { bakedAsStored, layerRecipes, RECIPE_RULE } from './zip-recipe.js';

/**
 * Layers -> what each layer contributes to the image, and what is hidden.
 * Precedence is the server's own first-wins rule (mergeFirstWins); this file
 * only decides which copies are left out of the image.
 *
 * A copy is left out of its layer when a copy from the same or an EARLIER
 * layer beats it. A copy beaten by a later layer (a later zip over an earlier
 * directory) stays in its own layer: then a layer's contribution depends only
 * on the layers before it, so a prefix of layers gives byte-identical layer
 * tars in every distribution (the production layer is shared by all images),
 * and the registry in the image still serves the later zip by the same rule.
 */

export class InvalidPackagesError extends Error {
  constructor(readonly problems: string[]) {
    super(`${problems.length} package problem(s), the first: ${problems[0]}`);
  }
}

export interface PackageRef {
  name: string;
  version: string;
  kind: 'zip' | 'directory';
  layer: string;
  /** path inside the layer, e.g. nginx/1.2.0 or apache-1.0.0.zip */
  path: string;
  hash: string;
}

export interface ShadowEntry {
  name: string;
  version: string;
  winner: PackageRef;
  hidden: PackageRef;
  /** true when the hidden copy has other files than the one served */
  differs: boolean;
}

export interface ShadowReport {
  distribution: string;
  layers: string[];
  shadowed: ShadowEntry[];
}

/** What a layer tar holds against the plain tree of its packages (the build summary's "what it saved"). */
export interface LayerSizes {
  /** package files in the layer (a zip and its signature are two) */
  files: number;
  /** distinct contents among them */
  distinctFiles: number;
  /** files written as a hard link to an earlier copy in the layer */
  links: number;
  /** the bytes of those files as the tree holds them */
  treeBytes: number;
  /** the layer tar's exact size: headers, each distinct content once, links, the baked index */
  tarBytes: number;
}

/**
 * One image layer of a package layer. A layer that fits its cap is one image
 * layer (`whole`: its packages and its baked index). A larger one is split
 * (builder/layer-split.ts) into `packages` parts, each a range of package
 * names, and one `index` part above them holding only the baked index: the
 * index changes with every package of the layer, so inside a part it would
 * change that part at every build.
 */
export interface ImageLayerPart {
  /** the package layer */
  layer: string;
  role: 'whole' | 'packages' | 'index';
  /** where a packages part starts: a package name, or name@version */
  bound?: string;
  /** package versions it holds */
  packages: number;
  /** sha256 naming the tar's exact bytes (the store keeps blobs by it): same key, same image layer */
  key: string;
  /** the tar, listed when first asked for */
  readonly entries: TarEntry[];
  /** the tar against its tree (lists the entries when first asked for) */
  readonly sizes: LayerSizes;
  /** the sizes, when the entries are listed already */
  listedSizes(): LayerSizes | undefined;
}

export interface LayerSplit {
  /** bounds of the packages parts (one entry when the layer is whole) */
  bounds: string[];
  /** package versions larger than the cap: each in a part of its own */
  oversized: Array<{ name: string; version: string; bytes: number }>;
  /** parts that outgrew the cap and were split again */
  resplit: number;
}

export interface LayerContribution {
  name: string;
  /**
   * The layer as one tar: packages/<name>/... with parents, sorted, the baked
   * index included; a file whose content an earlier file of the layer has is
   * a hard link to that first copy. Listed when first asked for. This is the
   * image layer of a layer that is not split.
   */
  readonly entries: TarEntry[];
  /** that tar against its tree (lists the entries when first asked for) */
  readonly sizes: LayerSizes;
  packages: PackageRef[];
  /** sha256 naming that tar's exact bytes */
  key: string;
  /** what the layer holds, package by package (a delta's base is compared with it) */
  state: LayerState;
  /** the image layers of the layer, bottom first: [whole] until split() says otherwise */
  readonly imageLayers: ImageLayerPart[];
  /**
   * Splits the layer under `cap` bytes per image layer, keeping the `previous`
   * bounds (read from the last image) while each part fits; sets imageLayers.
   * `knownBytes` gives the exact size of an image layer measured by an earlier build.
   */
  split(cap: number, previous?: string[], knownBytes?: (key: string) => number | undefined): LayerSplit;
  /** the tar of a delta layer that turns a full layer's packages into these, with the whole baked index (builder/delta.ts); its links stay inside it */
  deltaEntries(plan: DeltaPlan): TarEntry[];
}

/** Bumped whenever the layer tar layout changes, so that old layers are not reused. (4: repeated contents as hard links; 5: zips as recipes, and a layer over its cap split into parts and an index part) */
const LAYER_FORMAT = `epr-layer/5 ${RECIPE_RULE}`;

export interface MergeResult {
  contributions: LayerContribution[];
  /** the served set, sorted by name then version text */
  served: PackageRef[];
  report: ShadowReport;
  /** sha256 over the sorted served list (name, version, content hash) */
  packagesDigest: string;
  /** package versions the layers serve before a selection (= served.length without one) */
  available: number;
  /** layers taken from the cache on trust (MergeOptions.trust) */
  trusted: string[];
  /** the check of those layers against their files, running meanwhile: false when one changed */
  verification?: Promise<boolean>;
}

/** Where staged files came from, for error messages: the staging path is replaced by the source. */
function originOf(text: string, layers: Array<{ dir: string; origin: string }>): string {
  let out = text;
  for (const l of layers) out = out.split(l.dir).join(l.origin);
  return out;
}

export interface MergeOptions {
  /** the builder's package cache folder (undefined: none) and whether to read it */
  cacheDir?: string;
  readCache?: boolean;
  /** one line per layer: how many packages came from the cache */
  log?: (line: string) => void;
  /**
   * Layers taken from the cache without looking at their files (when it has
   * them): the caller must then wait for MergeResult.verification before it
   * keeps anything built from this result.
   */
  trust?: string[];
  /**
   * A lite distribution: the `<name>-<version>` keys to keep, chosen among the
   * merged winners. Every copy of any other version is left out of its layer.
   */
  select?: (winners: Package[]) => Set<string>;
}

export async function mergeLayers(distribution: string, layers: MaterialisedLayer[], opts: MergeOptions = {}): Promise<MergeResult> {
  const loaded: LoadedPackage[][] = [];
  const problems: string[] = [];
  const trusted: string[] = [];
  const checks: Array<Promise<boolean>> = [];
  for (const l of layers) {
    const cache = LayerCache.open(opts.cacheDir, l.dir, opts.readCache !== false);
    const r = await loadLayerPackages(l.dir, cache, { fromCache: l.immutable || opts.trust?.includes(l.name) });
    loaded.push(r.packages);
    if (r.fromCache && !l.immutable) {
      trusted.push(l.name);
      // started now, so that the walk overlaps the other layers, the merge and the image
      checks.push(unchangedSinceCache(l.dir, cache).catch(() => false));
    }
    for (const f of r.failures) problems.push(...f.problems.map((p) => `layer ${l.name}: ${originOf(formatProblem(p), layers)}`));
    // the registry refuses zip packages without a signature by default: catch it here, not at start-up
    for (const { pkg: p } of r.packages) {
      const sig = signatureProblem(p);
      if (sig) problems.push(`layer ${l.name}: ${originOf(formatProblem(sig), layers)}`);
    }
    const unsaved = r.failures.length === 0 ? cache.save() : undefined;
    opts.log?.(`layer ${l.name}: ${r.packages.length + r.failures.length} packages, ${r.fromCache && !l.immutable ? 'taken on trust from the last build (checked while the image is made)' : `${cache.hits} unchanged since the last build`}${unsaved ? `; ${unsaved}` : ''}`);
  }
  if (problems.length > 0) throw new InvalidPackagesError(problems);

  const info = new Map<Package, LoadedPackage & { layer: number }>();
  loaded.forEach((pkgs, i) => pkgs.forEach((lp) => info.set(lp.pkg, { ...lp, layer: i })));
  const merged = mergeFirstWins(loaded.map((pkgs) => pkgs.map((lp) => lp.pkg)));
  const chosen = opts.select?.(merged.winners);
  const kept = (p: Package) => !chosen || chosen.has(p.key);
  const left = new Set<Package>();
  for (const s of merged.shadowed) if (s.winnerLayer <= s.hiddenLayer) left.add(s.hidden);

  const ref = (p: Package): PackageRef => {
    const x = info.get(p)!;
    const l = layers[x.layer];
    return { name: p.name, version: p.version, kind: p.kind, layer: l.name, path: relativePath(l.dir, p.source.location), hash: x.hash };
  };

  const contributions = layers.map((l, i) => contribution(l, loaded[i].filter((lp) => !left.has(lp.pkg) && kept(lp.pkg)), ref));

  const shadowed: ShadowEntry[] = [];
  for (const s of merged.shadowed) {
    if (!kept(s.winner)) continue;
    const winner = ref(s.winner);
    const hidden = ref(s.hidden);
    shadowed.push({ name: s.winner.name, version: s.winner.version, winner, hidden, differs: winner.hash !== hidden.hash });
  }
  shadowed.sort((a, b) => byteCompare(a.name, b.name) || byteCompare(a.version, b.version) || byteCompare(a.hidden.layer, b.hidden.layer));

  const served = merged.winners.filter(kept).map(ref).sort((a, b) => byteCompare(a.name, b.name) || byteCompare(a.version, b.version));
  return {
    contributions,
    served,
    report: { distribution, layers: layers.map((l) => l.name), shadowed },
    packagesDigest: packagesDigest(served),
    available: merged.winners.length,
    trusted,
    verification: checks.length > 0 ? Promise.all(checks).then((ok) => ok.every(Boolean)) : undefined,
  };
}

/**
 * What one layer puts in the image: its kept packages under
 * packages/<layer>/, and its baked index; as one image layer, or split into
 * parts and an index part. The index records each manifest with the tar's
 * fixed time, which is the time it has in the image.
 *
 * The keys are known without building a tar: a tar is a function of its
 * packages' files (their content hashes cover names, sizes and bytes; a
 * zip's bytes hash covers the zip as stored) and of the baked index, which
 * the package model derives from those same files. A part's key covers only
 * its own packages, so a part is the same blob whatever changed beside it.
 * The entries are listed only when an image layer has to be sent.
 */
function contribution(l: MaterialisedLayer, keep: LoadedPackage[], ref: (p: Package) => PackageRef): LayerContribution {
  const held = keep.map(({ pkg: p, hash, bytes }) => ({ path: relativePath(l.dir, p.source.location), kind: p.kind, digest: bytes ?? hash }));
  const keyOf = (role: string, of: typeof held) => {
    const key = crypto.createHash('sha256').update(`${LAYER_FORMAT}\0${modelDigest()}\0${l.name}\0${role}\0`);
    for (const h of of) key.update(`${h.path}\0${h.kind}\0${h.digest}\n`);
    return key.digest('hex');
  };
  // made once: the split may need its size, and the whole layer or the index part its bytes
  let indexBytes: Buffer | undefined;
  const index = () => (indexBytes ??= indexText(l, keep));
  const whole = imagePart(l, keep, { role: 'whole', key: keyOf('whole', held), index });
  let imageLayers: ImageLayerPart[] = [whole];
  return {
    name: l.name,
    packages: keep.map((lp) => ref(lp.pkg)),
    key: whole.key,
    state: layerState(l.name, held),
    get entries() { return whole.entries; },
    get sizes() { return whole.sizes; },
    get imageLayers() { return imageLayers; },
    split(cap, previous, knownBytes) {
      const at = new Map(keep.map((lp, i) => [lp, i]));
      const units = keep.map((lp) => splitUnit(l, lp));
      const byUnit = new Map(units.map((u, i) => [u, keep[i]]));
      const known = (us: SplitUnit[]) => {
        if (us.length === units.length) return knownBytes?.(whole.key);
        const pkgs = us.map((u) => byUnit.get(u)!).sort((a, b) => at.get(a)! - at.get(b)!);
        return knownBytes?.(keyOf('part', pkgs.map((lp) => held[at.get(lp)!])));
      };
      const top = [`packages`, `packages/${l.name}`];
      const plan = splitUnits(units, { cap, top, previous, known, indexBytes: () => index().length });
      if (plan.parts.length <= 1) {
        imageLayers = [whole];
      } else {
        // each part in the layer's own order (the tar sorts its entries anyway)
        const parts = plan.parts.map((us, j): ImageLayerPart => {
          const pkgs = us.map((u) => byUnit.get(u)!).sort((a, b) => at.get(a)! - at.get(b)!);
          return imagePart(l, pkgs, { role: 'packages', key: keyOf('part', pkgs.map((lp) => held[at.get(lp)!])), bound: plan.bounds[j] });
        });
        imageLayers = [...parts, imagePart(l, [], { role: 'index', key: keyOf('index', held), index })];
      }
      return { bounds: plan.bounds, oversized: plan.oversized, resplit: plan.resplit };
    },
    deltaEntries: (plan) => layerTar(l, keep, { delta: plan, index }).entries,
  };
}

/** An image layer of `keep`'s packages and maybe the layer's baked index, its tar listed when first asked for. */
function imagePart(l: MaterialisedLayer, keep: LoadedPackage[], o: { role: ImageLayerPart['role']; key: string; bound?: string; index?: () => Buffer }): ImageLayerPart {
  let tar: LayerTar | undefined;
  const listed = () => (tar ??= layerTar(l, keep, { index: o.index }));
  return {
    layer: l.name,
    role: o.role,
    ...(o.bound === undefined ? {} : { bound: o.bound }),
    packages: keep.length,
    key: o.key,
    get entries() { return listed().entries; },
    get sizes() { return listed().sizes; },
    listedSizes: () => tar?.sizes,
  };
}

/** What a package version adds to a part of its layer, for the split. */
function splitUnit(l: MaterialisedLayer, lp: LoadedPackage): SplitUnit {
  let files: SplitUnit['files'] | undefined;
  return {
    name: lp.pkg.name,
    version: lp.pkg.version,
    get files() { return (files ??= packageEntries(l, lp)); },
  };
}

interface LayerTar { entries: TarEntry[]; sizes: LayerSizes }

/** A package file of the layer: its name in the tar, where its bytes are, and the digest of its content. */
interface LayerFile { name: string; from: string; size: number; digest: string }

/** The files a package puts in its layer's tar, with their content digests (from the package cache). */
function packageFiles(l: MaterialisedLayer, lp: LoadedPackage): LayerFile[] {
  const { pkg: p, digests } = lp;
  const rel = (abs: string) => relativePath(l.dir, abs);
  const own = p.kind === 'zip'
    ? [p.source.location, p.signatureFile].filter((x): x is string => x !== undefined).map((abs) => ({ name: rel(abs), from: abs, size: fs.statSync(abs).size }))
    : p.source.files().map((f) => ({ name: `${rel(p.source.location)}/${f.path}`, from: path.join(p.source.location, ...f.path.split('/')), size: f.size }));
  if (digests.length !== own.length) throw new Error(`${p.source.location}: ${digests.length} file digests cached for ${own.length} files (builder cache out of step: build with --no-cache)`);
  return own.map((f, i) => ({ name: `packages/${l.name}/${f.name}`, from: f.from, size: f.size, digest: digests[i] }));
}

/** packageFiles without where the bytes are: names, sizes and contents only (the split reads every file of the layer). */
function packageEntries(l: MaterialisedLayer, lp: LoadedPackage): SplitUnit['files'] {
  const { pkg: p, digests } = lp;
  if (p.kind === 'zip') return packageFiles(l, lp).map((f) => ({ name: f.name, size: f.size, content: f.digest }));
  const prefix = `packages/${l.name}/${relativePath(l.dir, p.source.location)}/`;
  const files = p.source.files();
  if (digests.length !== files.length) return packageFiles(l, lp).map((f) => ({ name: f.name, size: f.size, content: f.digest }));
  return files.map((f, i) => ({ name: prefix + f.path, size: f.size, content: digests[i] }));
}

/** The layer's baked index: every kept package, each manifest with the tar's fixed time (its time in the image). */
function indexText(l: MaterialisedLayer, keep: LoadedPackage[]): Buffer {
  return bakedIndexBytes(keep.map((lp) => bakedAsStored(lp.pkg, bakedEntry(l.dir, lp.pkg, FIXED_MTIME))));
}

/**
 * A tar of the layer: `keep`'s packages, or (with a delta plan) the packages
 * it sends and its whiteouts; with `index`, the layer's baked index (of all
 * its packages). Each distinct content goes in once: a later file with the
 * same content is a hard link to the first copy among these entries, so a
 * part's or a delta's links stay inside it.
 */
function layerTar(l: MaterialisedLayer, keep: LoadedPackage[], o: { delta?: DeltaPlan; index?: () => Buffer }): LayerTar {
  const top = `packages/${l.name}`;
  const files = new Map<string, LayerFile | 'mark'>();
  const rel = (abs: string) => relativePath(l.dir, abs);
  const delta = o.delta;
  const sent = delta && new Set(delta.send);
  for (const lp of keep) {
    if (sent && !sent.has(rel(lp.pkg.source.location))) continue;
    for (const f of packageFiles(l, lp)) files.set(f.name, f);
  }
  for (const dir of delta?.opaque ?? []) files.set(`${top}/${dir}/${OPAQUE_MARK}`, 'mark');
  for (const gone of delta?.remove ?? []) files.set(whiteoutName(top, gone), 'mark');
  const index = o.index?.();
  const indexName = `${top}/${BAKED_INDEX_FILE}`;
  // zips go as recipes, their entries once in the layer's entry store (builder/zip-recipe.ts)
  const zips = layerRecipes(l.dir, top, keep, sent && ((p) => sent.has(rel(p.source.location))));
  const plain = withParents([top, ...files.keys(), ...zips.store.keys(), ...(index ? [indexName] : [])]).map((name): TarEntry => {
    if (index && name === indexName) return { name, type: 'file', size: index.length, data: index };
    const stored = zips.store.get(name);
    if (stored) return stored;
    const f = files.get(name);
    if (f === 'mark') return { name, type: 'file', size: 0, data: Buffer.alloc(0) };
    const recipe = zips.recipes.get(name);
    if (recipe) return { name, type: 'file', size: recipe.length, data: recipe };
    return f ? { name, type: 'file', size: f.size, from: f.from } : { name, type: 'directory' };
  });
  const digestOf = (e: { name: string }) => {
    const f = files.get(e.name);
    return f && f !== 'mark' ? f.digest : undefined;
  };
  const entries = linkRepeats(plain, digestOf);
  return { entries, sizes: layerSizes(entries, files) };
}

function layerSizes(entries: TarEntry[], files: Map<string, LayerFile | 'mark'>): LayerSizes {
  const sizes: LayerSizes = { files: 0, distinctFiles: 0, links: 0, treeBytes: 0, tarBytes: tarSize(entries) };
  const distinct = new Set<string>();
  for (const e of entries) {
    const f = files.get(e.name);
    if (!f || f === 'mark') continue;
    sizes.files++;
    sizes.treeBytes += f.size;
    distinct.add(`${f.size}:${f.digest}`);
    if (e.type === 'link') sizes.links++;
  }
  sizes.distinctFiles = distinct.size;
  return sizes;
}

// ---------------------------------------------------------------------------
// sizes kept between builds

/** Image layer sizes kept: enough for every part of every layer of the last builds. */
const KEEP_LAYER_SIZES = 512;

function sizesFile(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'layer-sizes', `${key}.json`);
}

/** The sizes of the image layer named by content `key`, measured by an earlier build. */
export function cachedSizes(cacheDir: string | undefined, key: string): LayerSizes | undefined {
  if (!cacheDir) return undefined;
  const file = sizesFile(cacheDir, key);
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as LayerSizes;
    if (typeof s.tarBytes !== 'number' || typeof s.files !== 'number') return undefined;
    markUsed(file);
    return s;
  } catch {
    return undefined;
  }
}

/**
 * An image layer's sizes: those of its listed entries, else those kept by an
 * earlier build (a layer's entries take seconds to list at the size of the
 * real storage), else listed now. Kept for the next build either way.
 */
export function imageLayerSizes(part: ImageLayerPart, cacheDir: string | undefined): LayerSizes {
  const listed = part.listedSizes();
  const kept = listed ? undefined : cachedSizes(cacheDir, part.key);
  if (kept) return kept;
  const sizes = listed ?? part.sizes;
  if (cacheDir && writeCacheFile(sizesFile(cacheDir, part.key), JSON.stringify(sizes)) === undefined) keepRecent(path.dirname(sizesFile(cacheDir, part.key)), '.json', KEEP_LAYER_SIZES);
  return sizes;
}

/** What a package layer holds against its tree, over all its image layers (the build summary's "what it saved"). */
export interface LayerSaving extends LayerSizes {
  layer: string;
  /** package parts (1: not split) */
  parts: number;
  /** the largest image layer of the layer, in tar bytes */
  biggestPart: number;
  /** image layers of the layer (parts, and the index part of a split layer) */
  imageLayers: number;
}

export function layerSaving(c: LayerContribution, cacheDir: string | undefined): LayerSaving {
  const all = c.imageLayers.map((p) => imageLayerSizes(p, cacheDir));
  const sum = (k: keyof LayerSizes) => all.reduce((n, x) => n + x[k], 0);
  return {
    layer: c.name,
    files: sum('files'),
    distinctFiles: sum('distinctFiles'),
    links: sum('links'),
    treeBytes: sum('treeBytes'),
    tarBytes: sum('tarBytes'),
    parts: c.imageLayers.filter((p) => p.role !== 'index').length,
    biggestPart: Math.max(...all.map((x) => x.tarBytes)),
    imageLayers: c.imageLayers.length,
  };
}

/** The image label with each package layer's figures (LayerSaving without its name): diff:distribution and lite builds read them. */
export const LAYER_SIZES_LABEL = 'org.elastic.package-registry.layer-sizes';

export function savingsLabel(savings: LayerSaving[]): string {
  return JSON.stringify(Object.fromEntries(savings.map(({ layer, ...x }) => [layer, x])));
}

/** The figures of each layer from an image's label; an image built before it had them (or anything unreadable): none. */
export function readSavingsLabel(text: string | undefined): Record<string, Omit<LayerSaving, 'layer'>> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as Record<string, Omit<LayerSaving, 'layer'>>;
    return v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).filter(([, x]) => x && typeof x.tarBytes === 'number' && typeof x.treeBytes === 'number'))
      : {};
  } catch {
    return {};
  }
}

/** Bytes for people: kB below a megabyte, so that a small layer does not read 0.0 MB. */
export function formatBytes(n: number): string {
  return n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`;
}
const mb = formatBytes;

/** e.g. "125133 files (25255 written whole, 99878 as links): 530.7 MB written for 1788.9 MB of files (30%), 5 parts and the index part, the biggest 139.9 MB" */
export function describeSaving(s: LayerSaving): string {
  const share = s.treeBytes > 0 ? ` (${Math.round((s.tarBytes / s.treeBytes) * 100)}%)` : '';
  return `${s.files} files (${s.distinctFiles} written whole, ${s.links} as links): ${mb(s.tarBytes)} written for ${mb(s.treeBytes)} of files${share}, `
    + `${s.parts} part${s.parts === 1 ? '' : 's'}${s.imageLayers > s.parts ? ' and the index part' : ''}, the biggest ${mb(s.biggestPart)}`;
}

/** The identity of a served set: same packages with the same files -> same digest. */
export function packagesDigest(list: Array<{ name: string; version: string; hash: string }>): string {
  const lines = list.map((p) => `${p.name}\t${p.version}\t${p.hash}\n`).sort(byteCompare);
  return `sha256:${crypto.createHash('sha256').update(lines.join('')).digest('hex')}`;
}

/** One line per shadowed copy, for the build output. */
export function describeShadows(report: ShadowReport): string[] {
  return report.shadowed.map((s) => `${s.name} ${s.version}: ${s.winner.layer} (${s.winner.kind}) hides ${s.hidden.layer} (${s.hidden.kind}), content ${s.differs ? 'DIFFERS' : 'identical'} (${s.winner.hash.slice(7, 19)} vs ${s.hidden.hash.slice(7, 19)})`);
}
