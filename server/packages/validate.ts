import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import semver from 'semver';

/** One thing wrong with a package: which file, which field, and why. */
export interface Problem {
  file: string;
  field?: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}${p.field ? `: ${p.field}` : ''}: ${p.message}`;
}

export const NAME_PATTERN = '^[a-z0-9_]+$';

/**
 * The manifest checks, compiled when a package is first checked: a start
 * from baked indexes checks none. `validateSchema: false`: these schemas are
 * ours and fixed, and checking them against JSON Schema's own meta-schema
 * cost more than compiling them.
 */
let compiled: { packageManifest: ValidateFunction; dataStreamManifest: ValidateFunction } | undefined;
function validators(): NonNullable<typeof compiled> {
  if (compiled) return compiled;
  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false });
  ajv.addFormat('semver', { type: 'string', validate: (s: string) => semver.valid(s) !== null });
  return compiled = { packageManifest: ajv.compile(PACKAGE_MANIFEST_SCHEMA), dataStreamManifest: ajv.compile(DATA_STREAM_MANIFEST_SCHEMA) };
}

const PACKAGE_MANIFEST_SCHEMA = {
  type: 'object',
  required: ['format_version', 'name', 'title', 'version', 'description'],
  properties: {
    format_version: { type: 'string', format: 'semver' },
    name: { type: 'string', pattern: NAME_PATTERN },
    title: { type: 'string', minLength: 1 },
    version: { type: 'string', format: 'semver' },
    description: { type: 'string' },
    type: { type: 'string' },
    release: { type: 'string' },
    categories: { type: ['array', 'null'], items: { type: 'string' } },
    conditions: { type: ['object', 'null'] },
    policy_templates: {
      type: ['array', 'null'],
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, inputs: { type: 'array' } } },
    },
    icons: { type: ['array', 'null'], items: { type: 'object', required: ['src'] } },
    screenshots: { type: ['array', 'null'], items: { type: 'object', required: ['src'] } },
    owner: { type: ['object', 'null'] },
  },
};

const DATA_STREAM_MANIFEST_SCHEMA = {
  type: 'object',
  required: ['title', 'type'],
  properties: {
    title: { type: 'string', minLength: 1 },
    type: { type: 'string', minLength: 1 },
    streams: { type: ['array', 'null'], items: { type: 'object' } },
  },
};

function toProblems(file: string, errors: ErrorObject[] | null | undefined): Problem[] {
  return (errors ?? []).map((e) => {
    const base = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { file, field: base ? `${base}.${missing}` : missing, message: 'is required' };
    }
    if (e.keyword === 'format' && (e.params as { format: string }).format === 'semver') {
      return { file, field: base, message: 'must be a semantic version (X.Y.Z)' };
    }
    return { file, field: base || undefined, message: e.message ?? 'is invalid' };
  });
}

/**
 * Number values are accepted where YAML turns a version into a number; the
 * check is on their text, as EPR reads them.
 */
export function checkPackageManifest(file: string, manifest: unknown): Problem[] {
  const v = validators().packageManifest;
  return v(stringifyScalars(manifest)) ? [] : toProblems(file, v.errors);
}

export function checkDataStreamManifest(file: string, manifest: unknown): Problem[] {
  const v = validators().dataStreamManifest;
  return v(manifest) ? [] : toProblems(file, v.errors);
}

function stringifyScalars(m: unknown): unknown {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return m;
  const out: Record<string, unknown> = { ...(m as Record<string, unknown>) };
  for (const k of ['version', 'format_version', 'title', 'description']) {
    if (typeof out[k] === 'number') out[k] = String(out[k]);
  }
  return out;
}
