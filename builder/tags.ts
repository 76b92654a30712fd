/**
 * THE tag rule. A distribution image is tagged
 *   <repo>:<distribution>      the name, moved by every build
 *   <repo>:<commit>            the full commit hash it was built from
 *   <repo>:<X.Y.Z>             each git tag on that commit that is a bare
 *                              semver release version (7.9.0 yes; v7.9.0,
 *                              7.9, 7.9.0-SNAPSHOT or 7.9.0+build no)
 * and carries labels that say what it holds. The builder asks for the commit
 * and version tags only when every layer is exactly its commit (no
 * uncommitted changes): such a tag promises that commit's content.
 */

const STACK_VERSION = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

export function isStackVersion(gitTag: string): boolean {
  return STACK_VERSION.test(gitTag);
}

/** The git tags that become image tags, in version order. */
export function stackVersions(gitTags: string[]): string[] {
  const parts = (v: string) => v.split('.').map(Number);
  return [...new Set(gitTags.filter(isStackVersion))].sort((a, b) => {
    const [x, y] = [parts(a), parts(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
}

export interface TagInput {
  repository: string;
  distribution: string;
  commit: string;
  /** all git tags pointing at `commit` */
  gitTags: string[];
}

/** Full references (`repo:tag`), name first. */
export function imageTags(t: TagInput): string[] {
  const tags = [t.distribution];
  if (/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(t.commit)) tags.push(t.commit);
  tags.push(...stackVersions(t.gitTags));
  return tags.map((tag) => `${t.repository}:${tag}`);
}

export interface LabelInput {
  distribution: string;
  commit: string;
  stackVersions: string[];
  registryVersion: string;
  baseImage: string;
  packageCount: number;
  packagesDigest: string;
  layers: Array<{ name: string; commit: string; origin: string; dirty?: boolean }>;
}

export const LABEL_PREFIX = 'org.elastic.package-registry';

export function imageLabels(l: LabelInput): Record<string, string> {
  return {
    [`${LABEL_PREFIX}.distribution`]: l.distribution,
    [`${LABEL_PREFIX}.commit`]: l.commit,
    [`${LABEL_PREFIX}.stack-versions`]: l.stackVersions.join(','),
    [`${LABEL_PREFIX}.version`]: l.registryVersion,
    [`${LABEL_PREFIX}.package-count`]: String(l.packageCount),
    [`${LABEL_PREFIX}.packages-digest`]: l.packagesDigest,
    [`${LABEL_PREFIX}.layers`]: l.layers.map((x) => `${x.name}@${x.commit}${x.dirty ? '+dirty' : ''}`).join(','),
    'org.opencontainers.image.revision': l.commit,
    'org.opencontainers.image.title': `package-registry distribution ${l.distribution}`,
    'org.opencontainers.image.base.name': l.baseImage,
  };
}

/** Labels a loaded or pulled image must carry to be a distribution image. */
export const REQUIRED_LABELS = ['distribution', 'commit', 'version', 'package-count', 'packages-digest'].map((k) => `${LABEL_PREFIX}.${k}`);

/** Tags claimed by more than one distribution in one run: the last build takes them. */
export function sharedTags(plans: Array<{ distribution: string; tags: string[] }>): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const p of plans) for (const t of p.tags) owners.set(t, [...(owners.get(t) ?? []), p.distribution]);
  return new Map([...owners].filter(([, o]) => o.length > 1));
}
