import YAML, { LineCounter } from 'yaml';
import { CORE_SCHEMA, load as loadJsYaml } from 'js-yaml';
import { parsePlainYaml, plainIsString } from './plain-yaml.js';

/** A YAML document parsed into plain data, as EPR's Go config library reads manifests. */
export type ConfigValue = string | number | boolean | null | ConfigValue[] | ConfigMap;
export interface ConfigMap { [key: string]: ConfigValue }

export class YamlError extends Error {
  constructor(message: string, readonly line?: number) {
    super(message);
  }
}

/**
 * Parses YAML and expands dotted keys into nested maps (`owner.github: x` is
 * `owner: {github: x}`), merging with any sibling that names the same path.
 * EPR reads manifests this way, so packages rely on it.
 */
export function parseConfigYaml(text: string): ConfigMap {
  // most manifests are plain block YAML, read far faster by the plain reader (same result);
  // most others by js-yaml, where it is sure to read them as the yaml library does
  const plain = parsePlainYaml(text) ?? parseWithJsYaml(text);
  if (plain) return expandDottedKeys(plain) as ConfigMap;
  const lc = new LineCounter();
  const doc = YAML.parseDocument(text, { uniqueKeys: false, prettyErrors: false, lineCounter: lc });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    throw new YamlError(`invalid YAML: ${err.message.split('\n')[0]}`, lc.linePos(err.pos[0]).line);
  }
  const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new YamlError('expected a YAML mapping at the top level');
  return expandDottedKeys(value) as ConfigMap;
}

/** Directives, anchors, aliases and tags: js-yaml's rules for these differ from the yaml library's (or may, in a corner). */
const JS_YAML_UNSURE = /^%|(?:^|[\s,[{])[&*!]/m;

/**
 * js-yaml (core schema) reads a document 3-5 times faster than the yaml
 * library and to the same data, except in corners, which are left to the
 * library: documents with directives, anchors, aliases or tags (above); keys
 * that the library reads as null (`~:`, `null:`: js-yaml says "null", the
 * library ""); and string values that a plain scalar of the same text would
 * not give (js-yaml reads `1e400` as a string, the library as Infinity;
 * a quoted "10" lands here too, and only costs the slower reader). Anything
 * js-yaml refuses (duplicate keys, which the library accepts, or errors,
 * whose messages are the library's) goes to the library as well.
 */
function parseWithJsYaml(text: string): Record<string, unknown> | undefined {
  if (JS_YAML_UNSURE.test(text)) return undefined;
  let value: unknown;
  try {
    value = loadJsYaml(text, { schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !readsAsTheLibrary(value)) return undefined;
  return value as Record<string, unknown>;
}

const NULL_KEYS = new Set(['', '~', 'null', 'Null', 'NULL']);

function readsAsTheLibrary(v: unknown): boolean {
  // an empty string can only come from quotes or a block scalar (an empty plain scalar is null in both)
  if (typeof v === 'string') return v === '' || plainIsString(v);
  if (v === null || typeof v !== 'object') return typeof v !== 'number' || Number.isFinite(v);
  if (Array.isArray(v)) return v.every(readsAsTheLibrary);
  for (const [k, x] of Object.entries(v)) {
    if (NULL_KEYS.has(k) || !readsAsTheLibrary(x)) return false;
  }
  return true;
}

export function expandDottedKeys(value: unknown): ConfigValue {
  if (Array.isArray(value)) return value.map(expandDottedKeys);
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  if (value === null || typeof value !== 'object') return value as ConfigValue;
  const out: ConfigMap = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    const parts = key.split('.');
    let target = out;
    for (const part of parts.slice(0, -1)) {
      const existing = target[part];
      if (!isMap(existing)) target[part] = {};
      target = target[part] as ConfigMap;
    }
    const last = parts[parts.length - 1];
    const expanded = expandDottedKeys(raw);
    target[last] = isMap(target[last]) && isMap(expanded) ? mergeMaps(target[last] as ConfigMap, expanded) : expanded;
  }
  return out;
}

function mergeMaps(a: ConfigMap, b: ConfigMap): ConfigMap {
  const out: ConfigMap = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isMap(out[k]) && isMap(v) ? mergeMaps(out[k] as ConfigMap, v) : v;
  return out;
}

export function isMap(v: unknown): v is ConfigMap {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
