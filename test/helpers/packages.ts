/** In-memory packages for the pure selection functions: built from a manifest, no files. */
import semver from 'semver';
import { Package } from '../../server/packages/package.js';
import { buildPackageDocuments } from '../../server/packages/manifest.js';
import type { PackageSource } from '../../server/packages/source.js';
import type { ConfigMap } from '../../server/packages/yamlconfig.js';
import { expandDottedKeys } from '../../server/packages/yamlconfig.js';
import { manifestOf, type PackageSpec } from './fixtures.js';

function emptySource(location: string, kind: 'zip' | 'directory'): PackageSource {
  return {
    kind,
    location,
    files: () => [],
    file: () => undefined,
    readFile: () => Promise.reject(new Error('no files')),
    openStream: () => Promise.reject(new Error('no files')),
  };
}

export function makePackage(spec: PackageSpec, kind: 'zip' | 'directory' = 'directory'): Package {
  const manifest = expandDottedKeys(manifestOf(spec)) as ConfigMap;
  const docs = buildPackageDocuments({ manifest, dataStreams: [], assets: [], hasReadme: true, hasSignature: false });
  return new Package(emptySource(`/virtual/${spec.name}/${spec.version}`, kind), docs.facts, semver.parse(spec.version)!, docs.summary, docs.info);
}

/** `name@version` of each selected package, in order. */
export function ids(list: Array<{ pkg: Package }>): string[] {
  return list.map((s) => `${s.pkg.name}@${s.pkg.version}`);
}
