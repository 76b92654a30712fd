import { byteCompare } from '../../server/packages/source.js';

/**
 * What changed between two served sets, by name+version: versions added,
 * removed, and kept with other content (another content hash). The one home
 * of "what a build changes"; the stage policy and diff:distribution read it.
 */

export interface BakedPackage {
  name: string;
  version: string;
  /** content hash (sha256:...) of the served copy */
  hash: string;
  layer?: string;
}

export interface ChangedPackage {
  name: string;
  version: string;
  before: string;
  after: string;
}

export interface PackageDiff {
  added: BakedPackage[];
  removed: BakedPackage[];
  changed: ChangedPackage[];
  unchanged: number;
}

const key = (p: { name: string; version: string }) => `${p.name}\0${p.version}`;
const order = (a: { name: string; version: string }, b: { name: string; version: string }) => byteCompare(a.name, b.name) || byteCompare(a.version, b.version);

export function diffPackages(before: BakedPackage[], after: BakedPackage[]): PackageDiff {
  const old = new Map(before.map((p) => [key(p), p]));
  const now = new Map(after.map((p) => [key(p), p]));
  const added: BakedPackage[] = [];
  const changed: ChangedPackage[] = [];
  let unchanged = 0;
  for (const [k, p] of now) {
    const o = old.get(k);
    if (!o) added.push(p);
    else if (o.hash !== p.hash) changed.push({ name: p.name, version: p.version, before: o.hash, after: p.hash });
    else unchanged++;
  }
  const removed = [...old].filter(([k]) => !now.has(k)).map(([, p]) => p);
  return { added: added.sort(order), removed: removed.sort(order), changed: changed.sort(order), unchanged };
}

/** "+N added, -M removed, ~K changed" (and the size delta when both sizes are known). */
export function diffLine(d: PackageDiff, sizeDelta?: number): string {
  const size = sizeDelta === undefined ? '' : `, size ${formatSizeDelta(sizeDelta)}`;
  return `+${d.added.length} added, -${d.removed.length} removed, ~${d.changed.length} changed${size}`;
}

export function formatSizeDelta(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb >= 0 ? '+' : '-'}${Math.abs(mb).toFixed(1)} MB`;
}

/** One line per difference, for the human output of diff:distribution. */
export function diffDetails(d: PackageDiff): string[] {
  return [
    ...d.added.map((p) => `+ ${p.name} ${p.version}${p.layer ? ` (${p.layer})` : ''}`),
    ...d.removed.map((p) => `- ${p.name} ${p.version}${p.layer ? ` (${p.layer})` : ''}`),
    ...d.changed.map((p) => `~ ${p.name} ${p.version}: ${p.before.slice(7, 19)} -> ${p.after.slice(7, 19)}`),
  ];
}
