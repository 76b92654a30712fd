import semver from 'semver';
import { byteCompare } from '../server/packages/source.js';
import { entryHeaderSize } from './tar.js';

/**
 * A package layer split into several image layers ("parts") by package
 * name, so that no image layer is over the distribution's max_layer_size and
 * a change to one package changes one part.
 *
 * A part is a range of package names (of name@version pairs, when one name
 * alone is too large for a part): each part starts at a bound and holds every
 * package from there up to the next part's bound. The bounds are written into
 * the image (LAYER_PARTS_LABEL) and read back by the next build, which keeps
 * them as long as each part still fits: a new version, a changed package or
 * a new name only ever lands in the one part whose range holds it. A part
 * that outgrew the cap is split again on its own; a layer with no bounds yet
 * is split greedily into parts filled up to half the cap, so that they have
 * room to grow before they must be split.
 */

/** The image label with each package layer's part bounds: `{"<layer>": ["<first name>", "<name>", "<name>@<version>", ...]}`. */
export const LAYER_PARTS_LABEL = 'org.elastic.package-registry.layer-parts';

/** A part of a new split is filled up to this share of the cap. */
export const FILL_SHARE = 0.5;

/** One package version of the layer, as the split sees it: what its files add to a part's tar. */
export interface SplitUnit {
  name: string;
  version: string;
  /** entries of its files in the layer tar (full tar names); directories are derived from them */
  files: Array<{ name: string; size: number; content: string }>;
}

const BLOCK = 512;
const NO_DATA = Buffer.alloc(0);
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/**
 * The size of a part's tar as units are added to it: headers, parent
 * folders, each distinct content once and a repeat as a hard link, as
 * builder/tar.ts writes it (linkRepeats). The first copy of a content is the
 * first one added, which is the tar's first copy wherever versions sort by
 * their text as by their precedence; otherwise only a link target's name
 * differs, which changes its header only past 100 bytes.
 */
export class PartMeter {
  bytes: number;
  private readonly dirs = new Set<string>();
  private readonly first = new Map<string, string>();

  /** `top`: the folders every part holds (packages/, packages/<layer>/) */
  constructor(top: string[]) {
    this.bytes = 2 * BLOCK;
    for (const d of top) this.dir(d);
  }

  private dir(name: string): void {
    if (this.dirs.has(name)) return;
    this.dirs.add(name);
    this.bytes += entryHeaderSize({ name, type: 'directory' });
  }

  add(u: SplitUnit): number {
    for (const f of u.files) {
      for (let i = f.name.lastIndexOf('/'); i > 0; i = f.name.lastIndexOf('/', i - 1)) {
        const d = f.name.slice(0, i);
        if (this.dirs.has(d)) break;
        this.dir(d);
      }
      const file = entryHeaderSize({ name: f.name, type: 'file', size: f.size, data: NO_DATA }) + padded(f.size);
      if (f.size === 0) { this.bytes += file; continue; }
      const key = `${f.size}:${f.content}`;
      const target = this.first.get(key);
      if (target === undefined) {
        this.first.set(key, f.name);
        this.bytes += file;
      } else {
        this.bytes += Math.min(entryHeaderSize({ name: f.name, type: 'link', target }), file);
      }
    }
    return this.bytes;
  }
}

/** A part's start: a package name, or name@version when a name is split over several parts. */
interface Bound { name: string; version?: string }

function parseBound(text: string): Bound {
  const at = text.indexOf('@');
  return at < 0 ? { name: text } : { name: text.slice(0, at), version: text.slice(at + 1) };
}

function boundText(b: Bound): string {
  return b.version === undefined ? b.name : `${b.name}@${b.version}`;
}

/** Package order of the split: by name (bytes), then by version precedence. */
export function compareUnits(a: { name: string; version: string }, b: { name: string; version: string }): number {
  return byteCompare(a.name, b.name) || compareVersionText(a.version, b.version);
}

const parsed = new Map<string, semver.SemVer | null>();
function parseVersion(v: string): semver.SemVer | null {
  let p = parsed.get(v);
  if (p === undefined) {
    if (parsed.size > 100_000) parsed.clear();
    p = semver.parse(v);
    parsed.set(v, p);
  }
  return p;
}

function compareVersionText(a: string, b: string): number {
  const [x, y] = [parseVersion(a), parseVersion(b)];
  return x && y ? semver.compare(x, y) || byteCompare(a, b) : byteCompare(a, b);
}

/** Whether `u` sorts at or after bound `b`. */
function atOrAfter(u: { name: string; version: string }, b: Bound): boolean {
  const byName = byteCompare(u.name, b.name);
  if (byName !== 0) return byName > 0;
  return b.version === undefined || compareVersionText(u.version, b.version) >= 0;
}

export interface SplitPlan {
  /** the units of each part, in package order; the parts in bound order */
  parts: SplitUnit[][];
  /** where each part starts (written into the image for the next build) */
  bounds: string[];
  /** each part's estimated tar size */
  bytes: number[];
  /** package versions larger than the cap on their own: each has a part of its own */
  oversized: Array<{ name: string; version: string; bytes: number }>;
  /** parts that outgrew the cap since the split was read and were split again */
  resplit: number;
}

export interface SplitOptions {
  /** the cap: max_layer_size in bytes */
  cap: number;
  /** the folders every part holds */
  top: string[];
  /** the bounds the last image was split at (undefined: a layer not split before) */
  previous?: string[];
  /** the exact tar size of a part (or of the whole layer) of these units, when an earlier build measured it */
  known?: (units: SplitUnit[]) => number | undefined;
  /** what a layer left whole adds to its one part besides the packages: its baked index (asked only when needed) */
  indexBytes?: () => number;
}

/**
 * Splits the units of a layer (any order) into parts. With `previous`
 * bounds, every part that still fits keeps its range; without, or when the
 * layer was one part that no longer fits, the layer is split greedily.
 */
export function splitUnits(units: SplitUnit[], opts: SplitOptions): SplitPlan {
  const sorted = [...units].sort(compareUnits);
  const meter = (us: SplitUnit[]) => {
    const m = new PartMeter(opts.top);
    for (const u of us) m.add(u);
    return m.bytes;
  };
  const measure = (us: SplitUnit[]) => opts.known?.(us) ?? meter(us);
  const oversized: SplitPlan['oversized'] = [];
  const out: SplitPlan = { parts: [], bounds: [], bytes: [], oversized, resplit: 0 };
  const push = (part: SplitUnit[], bound: string, bytes: number) => {
    out.parts.push(part);
    out.bounds.push(bound);
    out.bytes.push(bytes);
  };

  const previous = (opts.previous ?? []).map(parseBound);
  if (previous.length <= 1) {
    // one part (with the baked index inside) while the whole layer fits
    // the baked index is made only when the packages alone fit
    const packagesOnly = opts.known?.(sorted) === undefined ? meter(sorted) : undefined;
    const whole = packagesOnly === undefined ? opts.known!(sorted)! : packagesOnly > opts.cap ? packagesOnly : packagesOnly + BLOCK + padded(opts.indexBytes?.() ?? 0);
    if (whole <= opts.cap || sorted.length <= 1) {
      if (sorted.length === 1 && whole > opts.cap) oversized.push({ name: sorted[0].name, version: sorted[0].version, bytes: whole });
      push(sorted, sorted.length ? sorted[0].name : '', whole);
      return out;
    }
    if (previous.length === 1) out.resplit++;
    for (const p of greedy(sorted, opts, meter, oversized)) push(p.units, p.bound, p.bytes);
    return out;
  }

  // the previous ranges: part j holds the units from bound j (the first part: from the start) up to bound j+1
  const ranges: Array<{ bound: Bound; units: SplitUnit[] }> = previous.map((b) => ({ bound: b, units: [] }));
  let j = 0;
  for (const u of sorted) {
    while (j + 1 < ranges.length && atOrAfter(u, ranges[j + 1].bound)) j++;
    ranges[j].units.push(u);
  }
  for (const r of ranges) {
    if (r.units.length === 0) continue;
    // the first part written starts at the start whatever its bound says
    const bound = out.parts.length === 0 ? r.units[0].name : boundText(r.bound);
    const bytes = measure(r.units);
    if (bytes <= opts.cap || r.units.length === 1) {
      if (bytes > opts.cap) oversized.push({ name: r.units[0].name, version: r.units[0].version, bytes });
      push(r.units, bound, bytes);
      continue;
    }
    out.resplit++;
    // split again on its own; its first piece keeps the range's start, so the parts around it keep theirs
    greedy(r.units, opts, meter, oversized).forEach((p, i) => push(p.units, i === 0 ? bound : p.bound, p.bytes));
  }
  return out;
}

/**
 * Greedy split of sorted units: whole names while they fit in the fill
 * target; a name over half the cap starts a part of its own, and a name over
 * the cap is split by version the same way.
 */
function greedy(sorted: SplitUnit[], opts: SplitOptions, measure: (us: SplitUnit[]) => number, oversized: SplitPlan['oversized']): Array<{ units: SplitUnit[]; bound: string; bytes: number }> {
  const target = opts.cap * FILL_SHARE;
  const empty = measure([]);
  const out: Array<{ units: SplitUnit[]; bound: string; bytes: number }> = [];
  let current: { units: SplitUnit[]; bound: string; meter: PartMeter } | undefined;
  const close = () => {
    if (current) out.push({ units: current.units, bound: current.bound, bytes: current.meter.bytes });
    current = undefined;
  };
  const open = (bound: string) => {
    close();
    current = { units: [], bound, meter: new PartMeter(opts.top) };
    return current;
  };
  const byName: SplitUnit[][] = [];
  for (const u of sorted) {
    const last = byName[byName.length - 1];
    if (last && last[0].name === u.name) last.push(u);
    else byName.push([u]);
  }
  for (const group of byName) {
    const alone = measure(group);
    // what the group adds to the open part is at most what it takes alone (shared folders and contents cost nothing twice)
    if (current && current.meter.bytes + alone - empty <= target) {
      for (const u of group) current.meter.add(u);
      current.units.push(...group);
      continue;
    }
    if (alone <= opts.cap) {
      const p = open(group[0].name);
      for (const u of group) p.meter.add(u);
      p.units.push(...group);
      if (alone > target) close();
      continue;
    }
    // one name larger than the cap: its versions in order, each part filled up to the target
    let first = true;
    for (const u of group) {
      const single = measure([u]);
      if (single > opts.cap) {
        oversized.push({ name: u.name, version: u.version, bytes: single });
        const p = open(first ? u.name : `${u.name}@${u.version}`);
        p.meter.add(u);
        p.units.push(u);
        close();
      } else if (!current || first || current.meter.bytes + single - empty > target) {
        const p = open(first ? u.name : `${u.name}@${u.version}`);
        p.meter.add(u);
        p.units.push(u);
      } else {
        current.meter.add(u);
        current.units.push(u);
      }
      first = false;
    }
    close();
  }
  close();
  return out;
}

/** The bounds of each layer, from the label of an earlier image; anything unreadable is no split. */
export function readPartsLabel(text: string | undefined): Record<string, string[]> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
    const out: Record<string, string[]> = {};
    for (const [k, b] of Object.entries(v as Record<string, unknown>)) {
      if (Array.isArray(b) && b.every((x) => typeof x === 'string')) out[k] = b as string[];
    }
    return out;
  } catch {
    return {};
  }
}

export function partsLabel(bounds: Record<string, string[]>): string {
  return JSON.stringify(bounds);
}

/** The warning for a package version larger than the cap. */
export function describeOversized(o: { layer: string; name: string; version: string; bytes: number }, cap: number): string {
  return `layer ${o.layer}: ${o.name} ${o.version} alone is ${(o.bytes / 1e6).toFixed(1)} MB, over max_layer_size ${(cap / 1e6).toFixed(1)} MB: it has an image layer of its own, over the cap`;
}
