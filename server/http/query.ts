import semver, { type SemVer } from 'semver';
import { HttpError } from './errors.js';
import type { DiscoveryFilter, PackageFilter } from '../packages/filters.js';

/**
 * Reads the query parameters of /search and /categories the way EPR does:
 * the first non-empty value counts (discovery may repeat), booleans as Go's
 * strconv.ParseBool, versions leniently, and every bad value a clear 400.
 */
export const SEARCH_PARAMS = ['package', 'type', 'kibana.version', 'agent.version', 'category', 'all', 'prerelease', 'experimental', 'internal', 'capabilities', 'spec.min', 'spec.max', 'discovery'];
export const CATEGORIES_PARAMS = ['kibana.version', 'agent.version', 'prerelease', 'experimental', 'internal', 'capabilities', 'spec.min', 'spec.max', 'discovery', 'include_policy_templates'];

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

export function queryOf(url: string): URLSearchParams {
  const q = url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
}

export function first(params: URLSearchParams, name: string): string | undefined {
  const v = params.get(name);
  return v === null || v === '' ? undefined : v;
}

export function parseBool(params: URLSearchParams, name: string): boolean | undefined {
  const v = first(params, name);
  if (v === undefined) return undefined;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw HttpError.badRequest(`invalid '${name}' query param: '${v}'`);
}

/** `7`, `7.2`, `v7.2.1` are all fine; what is left must be a version. */
export function parseLenientVersion(raw: string): SemVer | string {
  let v = raw.trim().replace(/^v/, '');
  const m = /^(\d+)(\.\d+)?(\.\d+)?(.*)$/.exec(v);
  if (!m) return 'Invalid Semantic Version';
  v = `${m[1]}${m[2] ?? '.0'}${m[3] ?? '.0'}${m[4]}`;
  return semver.parse(v) ?? 'Invalid Semantic Version';
}

function version(params: URLSearchParams, name: string, label: string): SemVer | undefined {
  const v = first(params, name);
  if (v === undefined) return undefined;
  const parsed = parseLenientVersion(v);
  if (typeof parsed === 'string') throw HttpError.badRequest(`invalid ${label} version '${v}': ${parsed}`);
  return parsed;
}

function specVersion(params: URLSearchParams, name: string): SemVer | undefined {
  const v = first(params, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)\.(\d+)$/.exec(v);
  if (!m) throw HttpError.badRequest(`invalid '${name}' version: invalid version '${v}': it should be <major.version>`);
  return new semver.SemVer(`${Number(m[1])}.${Number(m[2])}.0`);
}

function discovery(params: URLSearchParams): DiscoveryFilter[] | undefined {
  const values = params.getAll('discovery').filter((v) => v !== '');
  if (values.length === 0) return undefined;
  return values.map((v) => {
    const colon = v.indexOf(':');
    if (colon <= 0) throw HttpError.badRequest(`invalid 'discovery' query param: '${v}': could not parse filter "${v}"`);
    const kind = v.slice(0, colon);
    if (kind !== 'fields' && kind !== 'datasets') throw HttpError.badRequest(`invalid 'discovery' query param: '${v}': unknown discovery filter "${kind}"`);
    return { kind, values: v.slice(colon + 1).split(',').filter((x) => x !== '') };
  });
}

export function checkUnknown(params: URLSearchParams, allowed: string[], allowUnknown: boolean): void {
  if (allowUnknown) return;
  for (const key of params.keys()) {
    if (!allowed.includes(key)) throw HttpError.badRequest(`unknown query parameter: "${key}"`);
  }
}

/** The filter common to /search and /categories. */
export function parseFilter(params: URLSearchParams): PackageFilter {
  const capabilities = first(params, 'capabilities');
  return {
    all: parseBool(params, 'all'),
    prerelease: parseBool(params, 'prerelease'),
    experimental: parseBool(params, 'experimental'),
    packageName: first(params, 'package'),
    type: first(params, 'type'),
    category: first(params, 'category'),
    kibanaVersion: version(params, 'kibana.version', 'Kibana'),
    agentVersion: version(params, 'agent.version', 'agent'),
    capabilities: capabilities === undefined ? undefined : capabilities.split(',').filter((c) => c !== ''),
    specMin: specVersion(params, 'spec.min'),
    specMax: specVersion(params, 'spec.max'),
    discovery: discovery(params),
  };
}
