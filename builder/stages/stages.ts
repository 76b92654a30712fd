import semver from 'semver';
import { NAME_PATTERN } from '../../server/packages/validate.js';

/**
 * The stage model: every package starts in snapshot and moves towards
 * production one stage at a time. This file is the one home of that rule.
 */

export const STAGES = ['snapshot', 'staging', 'production'] as const;
export type Stage = (typeof STAGES)[number];

export function isStage(s: string): s is Stage {
  return (STAGES as readonly string[]).includes(s);
}

/** Why promoting `from` -> `to` is refused, or undefined when it is the allowed next step. */
export function directionProblem(from: Stage, to: Stage): string | undefined {
  const i = STAGES.indexOf(from);
  const j = STAGES.indexOf(to);
  const order = STAGES.join(' → ');
  if (i === j) return `--from and --to are both ${from}: a promotion moves a package to the next stage (${order})`;
  if (j < i) {
    return `${from} → ${to} goes backwards: packages only move towards production (${order}). ` +
      `To withdraw a package from ${from}, remove it from that layer in a reviewed change`;
  }
  if (j > i + 1) {
    const next = STAGES[i + 1];
    return `${from} → ${to} skips ${next}: promote one stage at a time so every package is served by ${next} before ${to} ` +
      `(first --from ${from} --to ${next}, then --from ${next} --to ${to})`;
  }
  return undefined;
}

export interface PackageId {
  name: string;
  version: string;
}

/** `<name>-<version>` (package names have no '-'), or `<name>@<version>` / `<name>/<version>`. */
export function parsePackageId(text: string): PackageId | undefined {
  const m = /^([^@/-]+)[-@/](.+)$/.exec(text.trim());
  if (!m) return undefined;
  const [, name, version] = m;
  if (!new RegExp(NAME_PATTERN).test(name) || semver.valid(version) !== version) return undefined;
  return { name, version };
}

export function packageKey(id: PackageId): string {
  return `${id.name}-${id.version}`;
}
