import crypto from 'node:crypto';
import fs from 'node:fs';
import { writeBakedIndex } from '../server/packages/baked.js';
import { FIXED_MTIME } from './layers.js';
import path from 'node:path';
import { loadPackagePath } from '../server/packages/index.js';
import { mergeFirstWins } from '../server/packages/precedence.js';
import { contentHash } from '../server/packages/hash.js';
import { byteCompare, walkFiles } from '../server/packages/source.js';
import { formatProblem } from '../server/packages/validate.js';
import type { Package } from '../server/packages/package.js';
import type { MaterialisedLayer } from './sources.js';

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
    super(`${problems.length} package problem(s): ${problems.join('; ')}`);
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

export interface LayerContribution {
  name: string;
  /** staging root: the layer's files are under <root>/packages/<name>/ */
  root: string;
  /** files and folders to put in the layer tar, relative to root, sorted, parents included */
  entries: string[];
  packages: PackageRef[];
}

export interface MergeResult {
  contributions: LayerContribution[];
  /** the served set, sorted by name then version text */
  served: PackageRef[];
  report: ShadowReport;
  /** sha256 over the sorted served list (name, version, content hash) */
  packagesDigest: string;
  /** package versions the layers serve before a selection (= served.length without one) */
  available: number;
}

/** Where staged files came from, for error messages: the staging path is replaced by the source. */
function originOf(text: string, layers: Array<{ dir: string; origin: string }>): string {
  let out = text;
  for (const l of layers) out = out.split(l.dir).join(l.origin);
  return out;
}

export interface MergeOptions {
  /**
   * A lite distribution: the `<name>-<version>` keys to keep, chosen among the
   * merged winners. Every copy of any other version is left out of its layer.
   */
  select?: (winners: Package[]) => Set<string>;
}

export async function mergeLayers(distribution: string, layers: Array<MaterialisedLayer & { root: string }>, opts: MergeOptions = {}): Promise<MergeResult> {
  const loaded: Package[][] = [];
  const problems: string[] = [];
  for (const l of layers) {
    const r = await loadPackagePath(l.dir, { validate: true });
    loaded.push(r.packages);
    for (const f of r.failures) problems.push(...f.problems.map((p) => `layer ${l.name}: ${originOf(formatProblem(p), layers)}`));
    // the registry refuses zip packages without a signature by default: catch it here, not at start-up
    for (const p of r.packages) {
      if (p.kind === 'zip' && !p.signatureFile) problems.push(`layer ${l.name}: ${originOf(`${p.source.location}.sig`, layers)}: signature is missing`);
    }
  }
  if (problems.length > 0) throw new InvalidPackagesError(problems);

  const merged = mergeFirstWins(loaded);
  const chosen = opts.select?.(merged.winners);
  const kept = (p: Package) => !chosen || chosen.has(p.key);
  const layerOf = new Map<Package, number>();
  loaded.forEach((pkgs, i) => pkgs.forEach((p) => layerOf.set(p, i)));
  const left = new Set<Package>();
  for (const s of merged.shadowed) if (s.winnerLayer <= s.hiddenLayer) left.add(s.hidden);

  const hashes = new Map<Package, string>();
  const hashOf = async (p: Package) => {
    let h = hashes.get(p);
    if (!h) { h = await contentHash(p.source); hashes.set(p, h); }
    return h;
  };
  const ref = async (p: Package): Promise<PackageRef> => {
    const l = layers[layerOf.get(p)!];
    return { name: p.name, version: p.version, kind: p.kind, layer: l.name, path: path.relative(l.dir, p.source.location).split(path.sep).join('/'), hash: await hashOf(p) };
  };

  const contributions: LayerContribution[] = [];
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const keep = loaded[i].filter((p) => !left.has(p) && kept(p));
    const rel = (abs: string) => path.relative(l.root, abs).split(path.sep).join('/');
    const files: string[] = [];
    for (const p of keep) {
      if (p.kind === 'zip') {
        files.push(rel(p.source.location));
        if (p.signatureFile) files.push(rel(p.signatureFile));
      } else {
        for (const f of walkFiles(p.source.location)) files.push(rel(path.join(p.source.location, ...f.path.split('/'))));
      }
    }
    files.push(rel(await bakeContribution(l.dir, keep, files.map((f) => path.join(l.root, ...f.split('/'))))));
    contributions.push({ name: l.name, root: l.root, entries: withParents([rel(l.dir), ...files]), packages: await Promise.all(keep.map(ref)) });
  }

  const shadowed: ShadowEntry[] = [];
  for (const s of merged.shadowed) {
    if (!kept(s.winner)) continue;
    const winner = await ref(s.winner);
    const hidden = await ref(s.hidden);
    shadowed.push({ name: s.winner.name, version: s.winner.version, winner, hidden, differs: winner.hash !== hidden.hash });
  }
  shadowed.sort((a, b) => byteCompare(a.name, b.name) || byteCompare(a.version, b.version) || byteCompare(a.hidden.layer, b.hidden.layer));

  const served = (await Promise.all(merged.winners.filter(kept).map(ref))).sort((a, b) => byteCompare(a.name, b.name) || byteCompare(a.version, b.version));
  return {
    contributions,
    served,
    report: { distribution, layers: layers.map((l) => l.name), shadowed },
    packagesDigest: packagesDigest(served),
    available: merged.winners.length,
  };
}

/**
 * Writes the layer's baked index next to its packages, so the registry in the
 * image starts without parsing them. The files get the tar's fixed time first:
 * the index records manifest sizes and times, and must match what the image
 * holds after Docker extracts the layer.
 */
async function bakeContribution(layerDir: string, packages: Package[], files: string[]): Promise<string> {
  for (const f of files) await fs.promises.utimes(f, FIXED_MTIME, FIXED_MTIME);
  return writeBakedIndex(layerDir, packages);
}

/** The identity of a served set: same packages with the same files -> same digest. */
export function packagesDigest(list: Array<{ name: string; version: string; hash: string }>): string {
  const lines = list.map((p) => `${p.name}\t${p.version}\t${p.hash}\n`).sort(byteCompare);
  return `sha256:${crypto.createHash('sha256').update(lines.join('')).digest('hex')}`;
}

/** Adds every parent folder of every entry and sorts by bytes, so parents come first. */
export function withParents(entries: string[]): string[] {
  const all = new Set<string>();
  for (const e of entries) {
    const parts = e.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join('/'));
  }
  return [...all].sort(byteCompare);
}

/** One line per shadowed copy, for the build output. */
export function describeShadows(report: ShadowReport): string[] {
  return report.shadowed.map((s) => `${s.name} ${s.version}: ${s.winner.layer} (${s.winner.kind}) hides ${s.hidden.layer} (${s.hidden.kind}), content ${s.differs ? 'DIFFERS' : 'identical'} (${s.winner.hash.slice(7, 19)} vs ${s.hidden.hash.slice(7, 19)})`);
}
