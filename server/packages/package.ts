import path from 'node:path';
import semver, { type SemVer } from 'semver';
import { parseConfigYaml, YamlError, type ConfigMap } from './yamlconfig.js';
import { buildPackageDocuments, policyTemplateReadme, type DataStreamManifest, type PackageFacts } from './manifest.js';
import type { JsonObject } from './fields.js';
import { byteCompare, DirectorySource, unsafeEntryName, ZipSource, type PackageSource } from './source.js';
import { checkDataStreamManifest, checkPackageManifest, type Problem } from './validate.js';
import fs from 'node:fs';

/** A package version ready to be served: its source of files and its JSON documents. */
export class Package {
  private infoValue: JsonObject | (() => JsonObject);

  constructor(
    readonly source: PackageSource,
    readonly facts: PackageFacts,
    readonly semver: SemVer,
    /** The search entry, as EPR sends it. */
    public summary: JsonObject,
    /** The package info, or how to read it when first asked for (a baked index keeps it on disk until then). */
    info: JsonObject | (() => JsonObject),
    /** Absolute path of the detached signature, for zip packages that have one. */
    readonly signatureFile?: string,
  ) {
    this.infoValue = info;
  }

  /** The package info, as EPR sends it. */
  get info(): JsonObject {
    if (typeof this.infoValue === 'function') this.infoValue = this.infoValue();
    return this.infoValue;
  }
  set info(value: JsonObject) { this.infoValue = value; }

  get name(): string { return this.facts.name; }
  get version(): string { return this.facts.version; }
  get key(): string { return `${this.facts.name}-${this.facts.version}`; }
  get kind(): 'zip' | 'directory' { return this.source.kind; }
}

/**
 * A zip package is served only with its detached signature (`<zip>.sig`),
 * unless the registry is told otherwise: the one home of that rule, for the
 * server at start-up and for the builder before anything is built.
 */
export function signatureProblem(p: Package): Problem | undefined {
  return p.kind === 'zip' && !p.signatureFile ? { file: `${p.source.location}.sig`, message: 'signature is missing' } : undefined;
}

export class PackageLoadError extends Error {
  constructor(readonly location: string, readonly problems: Problem[]) {
    super(problems.map((p) => `${p.file}${p.field ? `: ${p.field}` : ''}: ${p.message}`).join('; '));
  }
}

export interface LoadOptions {
  /** When false, problems that still leave a usable package are tolerated. */
  validate: boolean;
}

/** Files listed depth by depth (EPR's `assets` order), keeping the source order within a depth. */
export function assetOrder(files: string[]): string[] {
  const depth = (p: string) => { let d = 1; for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) d++; return d; };
  return files.map((p, i) => ({ p, i, d: depth(p) })).sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.p);
}

async function parseManifest(bytes: Promise<Buffer>, display: string, problems: Problem[]): Promise<ConfigMap | undefined> {
  try {
    return parseConfigYaml((await bytes).toString('utf8'));
  } catch (err) {
    const line = err instanceof YamlError && err.line ? ` (line ${err.line})` : '';
    problems.push({ file: display, message: `${(err as Error).message}${line}` });
    return undefined;
  }
}

/** A folder where a policy template's readme (`docs/<template>.md`) would be: EPR refuses the package. */
function readmeFolderProblems(manifest: ConfigMap, files: string[], display: (rel: string) => string): Problem[] {
  const templates = Array.isArray(manifest.policy_templates) ? manifest.policy_templates : [];
  const out: Problem[] = [];
  for (const t of templates) {
    const name = t && typeof t === 'object' && !Array.isArray(t) ? (t as ConfigMap).name : undefined;
    const rel = typeof name === 'string' ? policyTemplateReadme(name) : undefined;
    if (rel && files.some((f) => f.startsWith(`${rel}/`))) {
      out.push({ file: display(rel), field: 'policy_templates', message: `is a folder; the readme of policy template "${name}" must be a file` });
    }
  }
  return out;
}

export async function loadPackage(source: PackageSource, opts: LoadOptions): Promise<Package> {
  const problems: Problem[] = [];
  const display = (rel: string) => path.join(source.location, rel);
  if (!source.file('manifest.yml')) throw new PackageLoadError(source.location, [{ file: display('manifest.yml'), message: 'file is missing' }]);
  const files = source.files().map((f) => f.path);
  const dsDirs = [...new Set(files.filter((f) => /^data_stream\/[^/]+\/manifest\.yml$/.test(f)).map((f) => f.split('/')[1]))].sort(byteCompare);
  // every manifest is asked for at once: on a cold page cache the reads then wait on the disk together
  const read = (rel: string) => {
    const bytes = source.readFile(rel);
    bytes.catch(() => undefined); // handled where it is awaited; not an unhandled rejection meanwhile
    return bytes;
  };
  const manifestBytes = read('manifest.yml');
  const dsBytes = dsDirs.map((dir) => read(`data_stream/${dir}/manifest.yml`));
  const manifest = await parseManifest(manifestBytes, display('manifest.yml'), problems);
  if (!manifest) throw new PackageLoadError(source.location, problems);
  const fatal: Problem[] = checkPackageManifest(display('manifest.yml'), manifest);

  const name = String(manifest.name ?? '');
  const version = String(manifest.version ?? '');
  const parsed = semver.parse(version);
  if (fatal.length > 0 || !parsed) throw new PackageLoadError(source.location, fatal.length ? fatal : [{ file: display('manifest.yml'), field: 'version', message: 'must be a semantic version' }]);

  if (source instanceof DirectorySource) {
    const versionDir = path.basename(source.location);
    const nameDir = path.basename(path.dirname(source.location));
    if (versionDir !== version || nameDir !== name) {
      problems.push({ file: display('manifest.yml'), field: 'name/version', message: `manifest says ${name} ${version} but the package folder is ${nameDir}/${versionDir}` });
    }
  } else if (source instanceof ZipSource) {
    if (source.topFolder !== `${name}-${version}`) {
      problems.push({ file: source.location, field: 'name/version', message: `manifest says ${name} ${version} but the zip's top folder is ${source.topFolder}/` });
    }
  }
  if (!source.file('docs/README.md')) problems.push({ file: display('docs/README.md'), message: 'file is missing (every package needs a README)' });
  problems.push(...readmeFolderProblems(manifest, files, display));

  for (const f of files) {
    // a name that archives would turn into a path outside the package (`..\x` becomes `../x`)
    const unsafe = unsafeEntryName(f);
    if (unsafe) problems.push({ file: display(f), message: `file name cannot be served or archived safely: ${unsafe}` });
  }
  const dataStreams: DataStreamManifest[] = [];
  for (const [i, dir] of dsDirs.entries()) {
    const rel = `data_stream/${dir}/manifest.yml`;
    const m = await parseManifest(dsBytes[i], display(rel), problems);
    if (!m) continue;
    problems.push(...checkDataStreamManifest(display(rel), m));
    const pipelineDir = `data_stream/${dir}/elasticsearch/ingest_pipeline/`;
    const hasDefaultPipeline = files.some((f) => f === `${pipelineDir}default.json` || f === `${pipelineDir}default.yml`);
    dataStreams.push({ dir, manifest: m, hasDefaultPipeline });
  }
  if (opts.validate && problems.length > 0) throw new PackageLoadError(source.location, problems);

  const signatureFile = source instanceof ZipSource && fs.existsSync(`${source.location}.sig`) ? `${source.location}.sig` : undefined;
  const docs = buildPackageDocuments({
    manifest,
    dataStreams,
    assets: assetOrder(files),
    hasReadme: source.file('docs/README.md') !== undefined,
    hasSignature: signatureFile !== undefined,
  });
  return new Package(source, docs.facts, parsed, docs.summary, docs.info, signatureFile);
}
