import fs from 'node:fs';
import path from 'node:path';
import YAML, { LineCounter, isMap, isScalar, isSeq, type Document } from 'yaml';
import { Ajv, type ErrorObject } from 'ajv';
import type { SemVer } from 'semver';
import { CACHE_TIME_SCHEMA, PROJECT_ROOT } from '../server/config.js';
import { parseLenientVersion } from '../server/http/query.js';

/**
 * A distribution: which packages an image serves (its layers, in precedence
 * order), which registry serves them, and where the image goes. One YAML file
 * per distribution in distributions/<name>.yml, checked by one schema; every
 * problem is reported with its key and line.
 */

export type LayerSource =
  | { kind: 'directory'; directory: string }
  | { kind: 'git'; repo: string; ref: string; path: string };

export interface LayerDef {
  name: string;
  source: LayerSource;
}

/**
 * A stage rule for changes to published versions: `allow` always, `flag` only
 * with the build's CLI flag (--allow-overwrite; --allow-removal --reason),
 * `never` (and, for removal, only newer versions are added). The rule itself
 * lives in builder/stages/policy.ts.
 */
export type PolicyRule = 'allow' | 'flag' | 'never';
export interface StagePolicy { overwrite: PolicyRule; removal: PolicyRule }

export interface Distribution {
  name: string;
  /** image repository without tag, e.g. localhost:5000/package-registry/distribution */
  repository: string;
  /** version of the registry server the image runs (this tree's server) */
  registryVersion: string;
  /** base image the registry image is built on */
  baseImage: string;
  /** for a lite distribution (`select:`), the layers of the distribution it selects from */
  layers: LayerDef[];
  /** a lite distribution: the package versions it keeps from the layers of `select.from` */
  select?: Selection;
  /** cache_time as written (durations), copied into the image's config.yml */
  cacheTime: Record<string, string>;
  /** stage rules against the last published image; no policy block: allow/allow */
  policy: StagePolicy;
  /** max_layer_size in bytes: a package layer larger than this is split into several image layers (builder/layer-split.ts) */
  maxLayerSize: number;
  /** absolute path of the definition file */
  file: string;
}

/** A `select:` block: the matrix kibana.version × spec range of /search queries, plus pinned versions. */
export interface Selection {
  /** the distribution whose layers are selected from */
  from: string;
  fromLine?: number;
  /** image repository of `from` (set when resolved): a shared repository means shared commit tags */
  fromRepository?: string;
  /** only packages of these names (undefined: every name); pinned names count */
  names?: string[];
  /** name@version entries: kept whatever the matrix selects, and must exist */
  pinned: Array<{ name: string; version: string; index: number; line?: number }>;
  /** empty: no kibana.version filter */
  kibanaVersions: SemVer[];
  /** empty: no spec.min/spec.max filter */
  specRanges: Array<{ min?: SemVer; max?: SemVer }>;
  prerelease: boolean;
  /** false: the newest matching version per package and combination (as /search); true: every matching version */
  allVersions: boolean;
}

export const DISTRIBUTIONS_DIR = path.join(PROJECT_ROOT, 'distributions');

/** Layer names become folder names (/packages/<name>) and tar names: keep them plain. */
const LAYER_NAME = '^[a-z0-9][a-z0-9_-]*$';
const RULE = { enum: ['allow', 'flag', 'never'] };
/** spec.min/spec.max as /search takes them: <major.minor> */
const SPEC_VERSION = { type: 'string', pattern: '^\\d+\\.\\d+$' };
const SPEC_RANGES = {
  type: 'array',
  minItems: 1,
  items: { type: 'object', additionalProperties: false, minProperties: 1, properties: { min: SPEC_VERSION, max: SPEC_VERSION } },
};
const SELECT = {
  type: 'object',
  additionalProperties: false,
  required: ['from'],
  properties: {
    from: { type: 'string', pattern: LAYER_NAME },
    packages: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*(@[^@\\s]+)?$' } },
    kibana_versions: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    spec: SPEC_RANGES,
    spec_ranges: SPEC_RANGES,
    prerelease: { type: 'boolean' },
    all_versions: { type: 'boolean' },
  },
};

const schema = {
  type: 'object',
  additionalProperties: false,
  // layers or select: exactly one, checked after the schema for a clearer message
  required: ['name', 'image', 'package_registry'],
  properties: {
    name: { type: 'string', pattern: LAYER_NAME },
    image: {
      type: 'object',
      additionalProperties: false,
      required: ['repository'],
      // a repository reference: optional registry host[:port], lower-case path components
      properties: { repository: { type: 'string', pattern: '^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$' } },
    },
    package_registry: {
      type: 'object',
      additionalProperties: false,
      required: ['version'],
      properties: {
        version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+' },
        base_image: { type: 'string', minLength: 1 },
      },
    },
    layers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'source'],
        properties: {
          name: { type: 'string', pattern: LAYER_NAME },
          source: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            maxProperties: 1,
            properties: {
              directory: { type: 'string', minLength: 1 },
              git: {
                type: 'object',
                additionalProperties: false,
                required: ['repo', 'ref'],
                properties: {
                  repo: { type: 'string', minLength: 1 },
                  ref: { type: 'string', minLength: 1 },
                  path: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
    cache_time: CACHE_TIME_SCHEMA,
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['overwrite', 'removal'],
      properties: { overwrite: RULE, removal: RULE },
    },
    select: SELECT,
    max_layer_size: { type: ['string', 'integer'] },
  },
};

/** max_layer_size when a definition does not say: Harbor takes 10 GB per layer at most, and some registries less. */
export const DEFAULT_MAX_LAYER_SIZE = 4e9;

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/**
 * A size as Docker writes one, in decimal units: `500kB`, `300MB`, `4GB`,
 * `1.5GB`, or plain bytes (`1048576`). Returns the bytes, or why not.
 */
export function parseLayerSize(value: string | number): number | string {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtT]?)[bB]?$/.exec(text);
  if (!m) return `"${text}" is not a size: give bytes or a decimal size as Docker writes it (500kB, 300MB, 4GB)`;
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (!(bytes >= 1)) return `"${text}" is no size at all: a layer needs at least one byte`;
  return bytes;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

export class DistributionError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems: ${problems.join('; ')}`}`);
  }
}

/** Line of the deepest node that exists along `keyPath` (keys and sequence indexes). */
function lineOf(doc: Document, lc: LineCounter, keyPath: Array<string | number>): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = (node as { range?: number[] } | null)?.range?.[0];
  for (const key of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      if (!pair) break;
      offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as { range?: number[] } | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lc.linePos(offset).line;
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties': return 'unknown key';
    case 'required': return 'is required';
    case 'enum': return `must be one of ${(e.params as { allowedValues: string[] }).allowedValues.join(', ')}`;
    case 'minProperties':
      if (e.instancePath.startsWith('/select/')) return 'must have min, max or both';
      return 'must have exactly one of directory or git';
    case 'maxProperties': return 'must have exactly one of directory or git';
    case 'pattern':
      if (e.instancePath.startsWith('/select/spec')) return 'must be a spec version <major.minor> such as 3.0';
      if (e.instancePath.startsWith('/select/packages/')) return 'must be a package name or name@version';
      if (e.instancePath.startsWith('/cache_time')) return 'must be a duration such as 10s, 5m or 1h';
      if (e.instancePath.endsWith('/repository')) return 'must be an image repository such as localhost:5000/package-registry/distribution (no tag)';
      if (e.instancePath.endsWith('/version')) return 'must be a version X.Y.Z';
      return 'must be lower-case letters, digits, - or _';
    case 'type':
      if (e.instancePath === '/max_layer_size') return 'must be a size such as 300MB, 4GB or 500kB, or a number of bytes';
      return e.message ?? 'is invalid';
    default: return e.message ?? 'is invalid';
  }
}

export function parseDistributionText(text: string, file: string): Distribution {
  const lc = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new DistributionError(file, doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line}: invalid YAML: ${e.message.split('\n')[0]}`));
  }
  keepVersionText(doc, text);
  const data = (doc.toJS() ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  if (!validate(data)) {
    for (const e of validate.errors ?? []) {
      const keyPath: Array<string | number> = e.instancePath.split('/').filter(Boolean).map((k) => (/^\d+$/.test(k) ? Number(k) : k));
      if (e.keyword === 'additionalProperties') keyPath.push((e.params as { additionalProperty: string }).additionalProperty);
      // a missing key is reported at the line of the mapping that lacks it (none at the top level)
      const linePath = [...keyPath];
      if (e.keyword === 'required') keyPath.push((e.params as { missingProperty: string }).missingProperty);
      const key = keyPath.map((k) => (typeof k === 'number' ? `[${k}]` : k)).join('.').replace(/\.\[/g, '[');
      const line = e.keyword === 'required' && linePath.length === 0 ? undefined : lineOf(doc, lc, e.keyword === 'required' ? linePath : keyPath);
      problems.push(`${key || '(top level)'}${line ? ` (line ${line})` : ''}: ${describe(e)}`);
    }
  }
  // a lite distribution has select instead of layers: exactly one of the two
  if (data.layers === undefined && data.select === undefined) problems.push('layers: is required');
  if (data.layers !== undefined && data.select !== undefined) {
    const line = lineOf(doc, lc, ['select']);
    problems.push(`select${line ? ` (line ${line})` : ''}: give either layers or select, not both`);
  }
  if (problems.length > 0) throw new DistributionError(file, problems);
  const d = data as {
    name: string;
    image: { repository: string };
    package_registry: { version: string; base_image?: string };
    layers?: Array<{ name: string; source: { directory?: string; git?: { repo: string; ref: string; path?: string } } }>;
    select?: RawSelection;
    cache_time?: Record<string, string>;
    policy?: { overwrite?: PolicyRule; removal?: PolicyRule };
    max_layer_size?: string | number;
  };
  const seen = new Map<string, number>();
  (d.layers ?? []).forEach((l, i) => {
    if (seen.has(l.name)) {
      const line = lineOf(doc, lc, ['layers', i, 'name']);
      problems.push(`layers[${i}].name${line ? ` (line ${line})` : ''}: layer "${l.name}" is already defined by layers[${seen.get(l.name)}]`);
    } else seen.set(l.name, i);
  });
  const expected = path.basename(file).replace(/\.ya?ml$/, '');
  if (file !== '<text>' && d.name !== expected) {
    const line = lineOf(doc, lc, ['name']);
    problems.push(`name${line ? ` (line ${line})` : ''}: is "${d.name}" but the file is ${path.basename(file)}; they must agree`);
  }
  const select = d.select ? parseSelection(d.select, d.name, (p) => lineOf(doc, lc, ['select', ...p]), problems) : undefined;
  const maxLayerSize = d.max_layer_size === undefined ? DEFAULT_MAX_LAYER_SIZE : parseLayerSize(d.max_layer_size);
  if (typeof maxLayerSize === 'string') {
    const line = lineOf(doc, lc, ['max_layer_size']);
    problems.push(`max_layer_size${line ? ` (line ${line})` : ''}: ${maxLayerSize}`);
  }
  if (problems.length > 0) throw new DistributionError(file, problems);

  const baseDir = file === '<text>' ? process.cwd() : path.dirname(path.resolve(file));
  return {
    name: d.name,
    repository: d.image.repository,
    registryVersion: d.package_registry.version,
    baseImage: d.package_registry.base_image ?? 'node:20-bookworm-slim',
    select,
    layers: (d.layers ?? []).map((l) => ({
      name: l.name,
      source: l.source.directory !== undefined
        ? { kind: 'directory', directory: path.resolve(baseDir, l.source.directory) }
        : { kind: 'git', repo: path.resolve(baseDir, l.source.git!.repo), ref: l.source.git!.ref, path: normaliseGitPath(l.source.git!.path) },
    })),
    cacheTime: { ...(d.cache_time ?? {}) },
    policy: { overwrite: d.policy?.overwrite ?? 'allow', removal: d.policy?.removal ?? 'allow' },
    maxLayerSize: maxLayerSize as number,
    file: file === '<text>' ? file : path.resolve(file),
  };
}

interface RawSelection {
  from: string;
  packages?: string[];
  kibana_versions?: string[];
  spec?: Array<{ min?: string; max?: string }>;
  spec_ranges?: Array<{ min?: string; max?: string }>;
  prerelease?: boolean;
  all_versions?: boolean;
}

/**
 * Versions are read as /search reads its query: kibana versions leniently
 * (parseLenientVersion), spec versions as <major.minor> (the schema's
 * pattern). Problems are added with key and line.
 */
function parseSelection(raw: RawSelection, self: string, lineAt: (p: Array<string | number>) => number | undefined, problems: string[]): Selection {
  const at = (p: Array<string | number>) => {
    const key = ['select', ...p].map((k) => (typeof k === 'number' ? `[${k}]` : k)).join('.').replace(/\.\[/g, '[');
    const line = lineAt(p);
    return `${key}${line ? ` (line ${line})` : ''}`;
  };
  if (raw.from === self) problems.push(`${at(['from'])}: a distribution cannot select from itself`);
  if (raw.spec && raw.spec_ranges) problems.push(`${at(['spec_ranges'])}: give either spec or spec_ranges, not both`);
  const kibanaVersions: SemVer[] = [];
  (raw.kibana_versions ?? []).forEach((v, i) => {
    const parsed = parseLenientVersion(v);
    if (typeof parsed === 'string') problems.push(`${at(['kibana_versions', i])}: invalid Kibana version '${v}': ${parsed}`);
    else kibanaVersions.push(parsed);
  });
  const specKey = raw.spec ? 'spec' : 'spec_ranges';
  const specRanges = (raw.spec ?? raw.spec_ranges ?? []).map((r, i) => {
    const min = r.min === undefined ? undefined : parseLenientVersion(r.min) as SemVer;
    const max = r.max === undefined ? undefined : parseLenientVersion(r.max) as SemVer;
    if (min && max && min.compare(max) > 0) problems.push(`${at([specKey, i])}: min ${r.min} is above max ${r.max}`);
    return { min, max };
  });
  const names = new Set<string>();
  const pinned: Selection['pinned'] = [];
  (raw.packages ?? []).forEach((entry, index) => {
    const [name, version] = entry.split('@');
    names.add(name);
    if (version === undefined) return;
    const parsed = parseLenientVersion(version);
    if (typeof parsed === 'string' || parsed.version !== version) problems.push(`${at(['packages', index])}: invalid version '${version}': a pinned version is a full version such as 1.2.0`);
    else pinned.push({ name, version, index, line: lineAt(['packages', index]) });
  });
  return {
    from: raw.from,
    fromLine: lineAt(['from']),
    names: raw.packages ? [...names].sort() : undefined,
    pinned,
    kibanaVersions,
    specRanges,
    prerelease: raw.prerelease ?? false,
    allVersions: raw.all_versions ?? false,
  };
}

/**
 * YAML reads `9.0` or `3.10` as numbers; a version must keep the text as
 * written, so the scalars under select.kibana_versions and select.spec are
 * turned back into their source text before the schema sees them.
 */
function keepVersionText(doc: Document, text: string): void {
  const select = isMap(doc.contents) ? doc.contents.get('select', true) : undefined;
  if (!isMap(select)) return;
  const asText = (node: unknown) => {
    if (isScalar(node) && typeof node.value === 'number' && node.range) node.value = text.slice(node.range[0], node.range[1]);
  };
  const kibana = select.get('kibana_versions', true);
  if (isSeq(kibana)) kibana.items.forEach(asText);
  for (const key of ['spec', 'spec_ranges']) {
    const ranges = select.get(key, true);
    if (isSeq(ranges)) for (const r of ranges.items) if (isMap(r)) { asText(r.get('min', true)); asText(r.get('max', true)); }
  }
}

function normaliseGitPath(p: string | undefined): string {
  const s = (p ?? '').replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return s === '.' ? '' : s;
}

/** `production` means distributions/production.yml; anything with a slash or a .yml suffix is a path. */
export function distributionFile(nameOrPath: string, dir = DISTRIBUTIONS_DIR): string {
  if (nameOrPath.includes('/') || /\.ya?ml$/.test(nameOrPath)) return path.resolve(nameOrPath);
  return path.join(dir, `${nameOrPath}.yml`);
}

export function loadDistribution(nameOrPath: string, dir = DISTRIBUTIONS_DIR): Distribution {
  const file = distributionFile(nameOrPath, dir);
  if (!fs.existsSync(file)) {
    const known = listDistributions(dir);
    throw new DistributionError(file, [`no such distribution file${known.length ? ` (known: ${known.join(', ')})` : ''}`]);
  }
  return resolveSelection(parseDistributionText(fs.readFileSync(file, 'utf8'), file));
}

/**
 * A lite distribution takes its layers from `select.from`, a definition in
 * the same folder that has layers of its own (no chains of selections).
 */
export function resolveSelection(d: Distribution): Distribution {
  if (!d.select) return d;
  const at = `select.from${d.select.fromLine ? ` (line ${d.select.fromLine})` : ''}`;
  const dir = path.dirname(d.file);
  const file = distributionFile(d.select.from, dir);
  if (!fs.existsSync(file)) {
    const known = listDistributions(dir).filter((n) => n !== d.name);
    throw new DistributionError(d.file, [`${at}: no distribution "${d.select.from}" (${file} does not exist; known: ${known.join(', ') || 'none'})`]);
  }
  const from = parseDistributionText(fs.readFileSync(file, 'utf8'), file);
  if (from.select) throw new DistributionError(d.file, [`${at}: "${from.name}" selects from "${from.select.from}" itself; select from a distribution with layers`]);
  return { ...d, layers: from.layers, select: { ...d.select, fromRepository: from.repository } };
}

/** The distributions defined in `dir`, by name, sorted. */
export function listDistributions(dir = DISTRIBUTIONS_DIR): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, '')).sort();
}
