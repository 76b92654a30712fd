import semver, { type SemVer } from 'semver';

/**
 * Version order used everywhere: semantic versioning precedence, so a
 * pre-release sorts below its release and build metadata breaks no ties.
 */
export function compareVersions(a: SemVer | string, b: SemVer | string): number {
  return semver.compare(a, b);
}

/** Strict `X.Y.Z[-pre][+build]`, as EPR requires in URLs. */
export function isStrictSemver(v: string): boolean {
  // semver.valid trims its input; a URL version must be exact
  return /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.test(v) && semver.valid(v) !== null;
}

export function isPrerelease(v: SemVer): boolean {
  return v.prerelease.length > 0;
}
