import type { SemVer } from 'semver';
import { selectPackages, type PackageFilter } from '../server/packages/filters.js';
import { compareVersions } from '../server/packages/versions.js';
import type { Package } from '../server/packages/package.js';
import { DistributionError, type Selection } from './distribution.js';

/**
 * Lite distributions: which package versions a `select:` block keeps. The
 * choosing is the server's own /search (selectPackages) run once per
 * combination of the matrix kibana.version × spec range; this file only
 * builds the filters, unions the answers and adds the pinned versions.
 */

/** One /search filter per combination; an empty axis is a filter left out, as an absent query parameter. */
export function selectionFilters(sel: Selection): PackageFilter[] {
  const kibanas: Array<SemVer | undefined> = sel.kibanaVersions.length ? sel.kibanaVersions : [undefined];
  const specs: Array<{ min?: SemVer; max?: SemVer }> = sel.specRanges.length ? sel.specRanges : [{}];
  const filters: PackageFilter[] = [];
  for (const kibanaVersion of kibanas) {
    for (const spec of specs) filters.push({ all: sel.allVersions, prerelease: sel.prerelease, kibanaVersion, specMin: spec.min, specMax: spec.max });
  }
  return filters;
}

export interface SelectionResult {
  /** `<name>-<version>` of every package version kept */
  keys: Set<string>;
  /** the kept packages, by name then version */
  selected: Package[];
}

/**
 * The union over the matrix (restricted to `packages` names when given) plus
 * every pinned name@version, which must be among `packages` (the merged
 * winners of the `from` distribution's layers): a missing pin is an error
 * naming it, never a silently smaller image.
 */
export function selectVersions(packages: Package[], sel: Selection, file: string): SelectionResult {
  const names = sel.names ? new Set(sel.names) : undefined;
  const keys = new Set<string>();
  for (const filter of selectionFilters(sel)) {
    for (const { pkg } of selectPackages(packages, filter)) if (!names || names.has(pkg.name)) keys.add(pkg.key);
  }
  const byKey = new Map(packages.map((p) => [p.key, p]));
  const problems: string[] = [];
  for (const pin of sel.pinned) {
    const key = `${pin.name}-${pin.version}`;
    if (byKey.has(key)) { keys.add(key); continue; }
    const there = packages.filter((p) => p.name === pin.name).sort((a, b) => compareVersions(a.semver, b.semver)).map((p) => p.version);
    problems.push(`select.packages[${pin.index}]${pin.line ? ` (line ${pin.line})` : ''}: ${pin.name}@${pin.version} is pinned but not in the layers of ${sel.from}`
      + ` (${there.length ? `${pin.name} there: ${there.join(', ')}` : `no ${pin.name} there at all`})`);
  }
  if (problems.length > 0) throw new DistributionError(file, problems);
  const selected = packages.filter((p) => keys.has(p.key)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : compareVersions(a.semver, b.semver)));
  return { keys, selected };
}

export interface LiteSizes {
  from: string;
  selected: number;
  /** package versions the `from` distribution's layers serve */
  total: number;
  bytes: number;
  /** size of the full `from` image in the local engine; undefined: not built */
  fromBytes?: number;
  fromRef: string;
  /** the package layers' tar bytes and the bytes of their files (the build summary's figures), and those of the full image (its layer-sizes label) */
  written?: number;
  treeBytes?: number;
  fromWritten?: number;
  fromTreeBytes?: number;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export function describeLite(l: LiteSizes): string {
  return `lite: ${l.selected} of ${l.total} package versions, image ${mb(l.bytes)} vs `
    + (l.fromBytes === undefined ? `full ${l.from} image (${l.fromRef}) not built`
      // the base image is most of both: the difference says what the selection saves
      : `full ${l.from} image ${mb(l.fromBytes)} (${Math.round(Math.abs(l.fromBytes - l.bytes) / 1e3)} kB ${l.bytes <= l.fromBytes ? 'smaller' : 'larger'})`)
    + (l.written === undefined ? ''
      : `; package layers ${mb(l.written)} written for ${mb(l.treeBytes ?? 0)} of files`
        + (l.fromWritten === undefined ? '' : ` vs ${mb(l.fromWritten)} for ${mb(l.fromTreeBytes ?? 0)} in the full image`));
}
