import YAML, { LineCounter } from 'yaml';
import { parsePlainYaml } from './plain-yaml.js';

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
  // most manifests are plain block YAML, read far faster by the plain reader (same result)
  const plain = parsePlainYaml(text);
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
