import type { ConfigMap, ConfigValue } from './yamlconfig.js';
import { isMap } from './yamlconfig.js';

/**
 * Small readers that turn loosely typed manifest values into the exact JSON
 * shapes EPR sends: strings stay strings, absent optional fields stay absent.
 */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function asString(v: ConfigValue | undefined): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

export function asBool(v: ConfigValue | undefined): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (v === 'true') return true;
    if (v === 'false') return false;
  }
  return undefined;
}

export function asMap(v: ConfigValue | undefined): ConfigMap | undefined {
  return isMap(v) ? v : undefined;
}

export function asList(v: ConfigValue | undefined): ConfigValue[] {
  return Array.isArray(v) ? v : [];
}

export function asStringList(v: ConfigValue | undefined): string[] {
  if (typeof v === 'string') return [v];
  return asList(v).map(asString).filter((s): s is string => s !== undefined);
}

/** Builds an object in the given key order, leaving out undefined values (Go's omitempty). */
export function obj(entries: Array<[string, Json | undefined]>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of entries) if (v !== undefined) out[k] = v;
  return out;
}

/** An omitempty string: undefined when empty. */
export function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** An omitempty list: undefined when empty. */
export function nonEmptyList<T extends Json>(list: T[] | undefined): T[] | undefined {
  return list && list.length > 0 ? list : undefined;
}

/** Copies a free-form YAML value (a var default, a mapping) as JSON. */
export function toJson(v: ConfigValue | undefined): Json | undefined {
  if (v === undefined) return undefined;
  return v as Json;
}
