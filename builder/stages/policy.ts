import semver from 'semver';
import type { StagePolicy } from '../distribution.js';
import { diffPackages, type BakedPackage, type PackageDiff } from './diff.js';

/**
 * THE stage policy rule: what a build may do to the versions the last
 * published image of its distribution serves.
 *
 *                      snapshot   staging                          production
 *   overwrite          allow      flag: --allow-overwrite          never
 *   remove             allow      flag: --allow-removal --reason   never (only newer versions are added)
 *
 * Pure: the published list and the new list in, one violation per offending
 * package out. Under `removal: never` a new version lower than the newest
 * published version of its package is a violation too: production only moves
 * forward.
 */

export interface PolicyFlags {
  allowOverwrite: boolean;
  allowRemoval: boolean;
  /** why versions are removed; required with --allow-removal */
  reason?: string;
}

export type ViolationRule = 'overwrite' | 'removal' | 'older-version';

export interface Violation {
  name: string;
  version: string;
  rule: ViolationRule;
  /** one line: package, what happened, which rule, how to allow it (if it can be) */
  message: string;
}

export interface PolicyResult {
  diff: PackageDiff;
  violations: Violation[];
  /** the flags that were needed and given: recorded on the image with the reason */
  overrides: Array<'overwrite' | 'removal'>;
}

const short = (hash: string) => hash.replace(/^sha256:/, '').slice(0, 12);

function newest(versions: string[]): string | undefined {
  const valid = versions.filter((v) => semver.valid(v));
  return valid.sort(semver.compare).pop();
}

export function checkStagePolicy(distribution: string, policy: StagePolicy, published: BakedPackage[], next: BakedPackage[], flags: PolicyFlags): PolicyResult {
  const diff = diffPackages(published, next);
  const violations: Violation[] = [];
  const overrides = new Set<'overwrite' | 'removal'>();
  const reason = flags.reason?.trim();

  for (const c of diff.changed) {
    const what = `${c.name} ${c.version}: content changed (${short(c.before)} -> ${short(c.after)})`;
    if (policy.overwrite === 'allow') continue;
    if (policy.overwrite === 'never') {
      violations.push({ name: c.name, version: c.version, rule: 'overwrite', message: `${what}: ${distribution} never overwrites a published version (not even with --allow-overwrite); publish a new version instead` });
    } else if (!flags.allowOverwrite) {
      violations.push({ name: c.name, version: c.version, rule: 'overwrite', message: `${what}: ${distribution} overwrites a published version only with --allow-overwrite` });
    } else overrides.add('overwrite');
  }

  for (const r of diff.removed) {
    const what = `${r.name} ${r.version}: removed (it is in the published image)`;
    if (policy.removal === 'allow') continue;
    if (policy.removal === 'never') {
      violations.push({ name: r.name, version: r.version, rule: 'removal', message: `${what}: ${distribution} never removes a published version (not even with --allow-removal); only newer versions are added` });
    } else if (!flags.allowRemoval) {
      violations.push({ name: r.name, version: r.version, rule: 'removal', message: `${what}: ${distribution} removes a published version only with --allow-removal --reason "<why>"` });
    } else if (!reason) {
      violations.push({ name: r.name, version: r.version, rule: 'removal', message: `${what}: --allow-removal also needs --reason "<why>" (recorded on the image)` });
    } else overrides.add('removal');
  }

  if (policy.removal === 'never') {
    const byName = new Map<string, string[]>();
    for (const p of published) byName.set(p.name, [...(byName.get(p.name) ?? []), p.version]);
    for (const a of diff.added) {
      const top = newest(byName.get(a.name) ?? []);
      if (top && semver.valid(a.version) && semver.lt(a.version, top)) {
        violations.push({ name: a.name, version: a.version, rule: 'older-version', message: `${a.name} ${a.version}: added below the newest published version ${top}: ${distribution} only adds newer versions (no flag allows this)` });
      }
    }
  }

  return { diff, violations, overrides: [...overrides].sort() };
}

export class PolicyViolationError extends Error {
  constructor(readonly distribution: string, readonly published: string, readonly violations: Violation[]) {
    // one short line (a task title); the CLI prints each violation's message below it
    super(`stage policy of ${distribution}: ${violations.length} package(s) break it against ${published}: ${violations.map((v) => `${v.name} ${v.version} (${v.rule})`).join(', ')}`);
  }
}
