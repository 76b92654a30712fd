import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML, { LineCounter, isMap, isScalar, type Document } from 'yaml';
import { Ajv } from 'ajv';
import { expandDottedKeys } from './packages/yamlconfig.js';

/**
 * config.yml: the package paths in precedence order and the cache times.
 * One schema holds the defaults; a file with problems is rejected with every
 * problem, each with its key and line.
 */
export interface CacheTimes { index: number; search: number; categories: number; catchAll: number }

export interface RegistryConfig {
  /** absolute package paths, in precedence order */
  packagePaths: string[];
  /** seconds */
  cacheTime: CacheTimes;
  /** where it came from, for the start-up log */
  source: string;
}

export const DEFAULT_CACHE_TIME = { index: '10s', search: '10m', categories: '10m', catch_all: '10m' } as const;

/** Where the compiled tree lives: dist/ (or another --outDir named dist-*), holding server/, builder/, test/. */
export const DIST_ROOT = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = path.dirname(here);
  return /^dist(-[\w.-]+)?$/.test(path.basename(out)) ? out : path.join(out, 'dist');
})();

/** The project root: dist/server/config.js -> ../.. ; server/config.ts -> .. */
export const PROJECT_ROOT = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const compiled = /^dist(-[\w.-]+)?$/.test(path.basename(path.dirname(here)));
  return path.resolve(here, compiled ? '../..' : '..');
})();

/** What `npm start` serves with no config: the sample layers, production first. */
export const BUNDLED_LAYERS = ['production', 'staging', 'snapshot'].map((l) => path.join(PROJECT_ROOT, 'distributions', 'layers', l));

const DURATION = '^(\\d+(\\.\\d+)?(ns|us|µs|ms|s|m|h))+$';

/** cache_time.* as config.yml and the distribution definitions both write it. */
export const CACHE_TIME_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    index: { type: 'string', pattern: DURATION },
    search: { type: 'string', pattern: DURATION },
    categories: { type: 'string', pattern: DURATION },
    catch_all: { type: 'string', pattern: DURATION },
  },
} as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    package_paths: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    cache_time: CACHE_TIME_SCHEMA,
  },
};

// validateSchema: false: the schema is ours and fixed; checking it against the meta-schema at every start cost more than compiling it
const validate = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(schema);

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`}`);
  }
}

/** Go-style duration ("10s", "1m30s", "500ms") to whole seconds. */
export function durationSeconds(d: string): number {
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * units[m[2]];
  return Math.floor(total);
}

function lineOf(doc: Document, lc: LineCounter, keyPath: string[]): number | undefined {
  // keys may be written nested (cache_time: {index: ..}) or dotted (cache_time.index: ..)
  for (let split = keyPath.length; split >= 1; split--) {
    const nested = [...keyPath.slice(0, split - 1), keyPath.slice(split - 1).join('.')];
    const node = doc.getIn(nested, true) as { range?: [number, number, number] } | undefined;
    const pair = findPair(doc, nested);
    const offset = pair ?? node?.range?.[0];
    if (offset !== undefined) return lc.linePos(offset).line;
  }
  return undefined;
}

function findPair(doc: Document, keyPath: string[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  for (const key of keyPath) {
    if (!isMap(node)) return undefined;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (!pair) return undefined;
    offset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    node = pair.value;
  }
  return offset;
}

export function parseConfigText(text: string, file: string): RegistryConfig {
  const lc = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => `line ${lc.linePos(e.pos[0]).line}: invalid YAML: ${e.message.split('\n')[0]}`));
  }
  const raw = doc.toJS() ?? {};
  const data = expandDottedKeys(raw) as Record<string, unknown>;
  if (!validate(data)) {
    const problems = (validate.errors ?? []).map((e) => {
      const keyPath = e.instancePath.split('/').filter(Boolean);
      if (e.keyword === 'additionalProperties') keyPath.push((e.params as { additionalProperty: string }).additionalProperty);
      const key = keyPath.map((k) => (/^\d+$/.test(k) ? `[${k}]` : k)).join('.').replace(/\.\[/g, '[');
      const line = lineOf(doc, lc, keyPath.filter((k) => !/^\d+$/.test(k)));
      const what = e.keyword === 'additionalProperties' ? 'unknown key'
        : e.keyword === 'pattern' ? 'must be a duration such as 10s, 5m or 1h'
          : e.message ?? 'is invalid';
      return `${key || '(top level)'}${line ? ` (line ${line})` : ''}: ${what}`;
    });
    throw new ConfigError(file, problems);
  }
  const baseDir = path.dirname(path.resolve(file));
  const cache = { ...DEFAULT_CACHE_TIME, ...((data.cache_time as Record<string, string> | undefined) ?? {}) };
  return {
    packagePaths: ((data.package_paths as string[] | undefined) ?? BUNDLED_LAYERS).map((p) => path.resolve(baseDir, p)),
    cacheTime: {
      index: durationSeconds(cache.index),
      search: durationSeconds(cache.search),
      categories: durationSeconds(cache.categories),
      catchAll: durationSeconds(cache.catch_all),
    },
    source: path.resolve(file),
  };
}

/**
 * Reads the configuration. A config file named explicitly must exist; the
 * default `config.yml` may be absent, and then the bundled layers are served.
 */
export function loadConfig(file: string, explicit: boolean): RegistryConfig {
  if (!fs.existsSync(file)) {
    if (explicit) throw new ConfigError(file, ['file not found']);
    return { ...parseConfigText('{}', file), source: 'built-in defaults (no config.yml): the bundled sample layers' };
  }
  return parseConfigText(fs.readFileSync(file, 'utf8'), file);
}
