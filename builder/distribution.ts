import fs from 'node:fs';
import path from 'node:path';
import YAML, { LineCounter, isMap, isScalar, isSeq, type Document } from 'yaml';
import { Ajv, type ErrorObject } from 'ajv';
import { PROJECT_ROOT } from '../server/config.js';

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

export type PolicyRule = 'allow' | 'warn' | 'deny';

export interface Distribution {
  name: string;
  /** image repository without tag, e.g. localhost:5000/package-registry/distribution */
  repository: string;
  /** version of the registry server the image runs (this tree's server) */
  registryVersion: string;
  /** base image the registry image is built on */
  baseImage: string;
  layers: LayerDef[];
  /** cache_time as written (durations), copied into the image's config.yml */
  cacheTime: Record<string, string>;
  /** overwrite/removal rules; parsed and kept, enforced by a later step */
  policy: { overwrite: PolicyRule; removal: PolicyRule };
  /** absolute path of the definition file */
  file: string;
}

export const DISTRIBUTIONS_DIR = path.join(PROJECT_ROOT, 'distributions');

/** Layer names become folder names (/packages/<name>) and tar names: keep them plain. */
const LAYER_NAME = '^[a-z0-9][a-z0-9_-]*$';
const DURATION = '^(\\d+(\\.\\d+)?(ns|us|µs|ms|s|m|h))+$';
const RULE = { enum: ['allow', 'warn', 'deny'] };

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'image', 'package_registry', 'layers'],
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
    cache_time: {
      type: 'object',
      additionalProperties: false,
      properties: {
        index: { type: 'string', pattern: DURATION },
        search: { type: 'string', pattern: DURATION },
        categories: { type: 'string', pattern: DURATION },
        catch_all: { type: 'string', pattern: DURATION },
      },
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      properties: { overwrite: RULE, removal: RULE },
    },
  },
};

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
    case 'maxProperties': return 'must have exactly one of directory or git';
    case 'pattern':
      if (e.instancePath.startsWith('/cache_time')) return 'must be a duration such as 10s, 5m or 1h';
      if (e.instancePath.endsWith('/repository')) return 'must be an image repository such as localhost:5000/package-registry/distribution (no tag)';
      if (e.instancePath.endsWith('/version')) return 'must be a version X.Y.Z';
      return 'must be lower-case letters, digits, - or _';
    default: return e.message ?? 'is invalid';
  }
}

export function parseDistributionText(text: string, file: string): Distribution {
  const lc = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new DistributionError(file, doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line}: invalid YAML: ${e.message.split('\n')[0]}`));
  }
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
    throw new DistributionError(file, problems);
  }
  const d = data as {
    name: string;
    image: { repository: string };
    package_registry: { version: string; base_image?: string };
    layers: Array<{ name: string; source: { directory?: string; git?: { repo: string; ref: string; path?: string } } }>;
    cache_time?: Record<string, string>;
    policy?: { overwrite?: PolicyRule; removal?: PolicyRule };
  };
  const seen = new Map<string, number>();
  d.layers.forEach((l, i) => {
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
  if (problems.length > 0) throw new DistributionError(file, problems);

  const baseDir = file === '<text>' ? process.cwd() : path.dirname(path.resolve(file));
  return {
    name: d.name,
    repository: d.image.repository,
    registryVersion: d.package_registry.version,
    baseImage: d.package_registry.base_image ?? 'node:20-bookworm-slim',
    layers: d.layers.map((l) => ({
      name: l.name,
      source: l.source.directory !== undefined
        ? { kind: 'directory', directory: path.resolve(baseDir, l.source.directory) }
        : { kind: 'git', repo: path.resolve(baseDir, l.source.git!.repo), ref: l.source.git!.ref, path: normaliseGitPath(l.source.git!.path) },
    })),
    cacheTime: { ...(d.cache_time ?? {}) },
    policy: { overwrite: d.policy?.overwrite ?? 'deny', removal: d.policy?.removal ?? 'deny' },
    file: file === '<text>' ? file : path.resolve(file),
  };
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
  return parseDistributionText(fs.readFileSync(file, 'utf8'), file);
}

/** The distributions defined in `dir`, by name, sorted. */
export function listDistributions(dir = DISTRIBUTIONS_DIR): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, '')).sort();
}
