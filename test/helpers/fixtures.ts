/**
 * Small packages written on the fly into temporary folders: directory packages
 * (`<root>/<name>/<version>/`) and zip packages (top folder `<name>-<version>/`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yazl from 'yazl';
import YAML from 'yaml';

export interface PackageSpec {
  name: string;
  version: string;
  title?: string;
  description?: string;
  /** Extra manifest keys (categories, conditions, release, type, policy_templates, discovery, ...). */
  manifest?: Record<string, unknown>;
  /** Manifest keys to leave out (to make a required field go missing). */
  omit?: string[];
  /** The manifest text as it is, instead of the generated one (for invalid YAML). */
  rawManifest?: string;
  /** README text; false leaves docs/README.md out. */
  readme?: string | false;
  /** More files, by path relative to the package root. */
  files?: Record<string, string | Buffer>;
  /** data_stream/<dir>/manifest.yml contents, by dir. */
  dataStreams?: Record<string, Record<string, unknown>>;
}

const tmpRoots: string[] = [];

/** A fresh temporary folder, removed by `cleanupTmp()`. */
export function tmpDir(prefix = 'epr-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpRoots.push(dir);
  return dir;
}

export function cleanupTmp(): void {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function manifestOf(spec: PackageSpec): Record<string, unknown> {
  const m: Record<string, unknown> = {
    format_version: '3.0.0',
    name: spec.name,
    title: spec.title ?? `Title of ${spec.name}`,
    version: spec.version,
    description: spec.description ?? `Description of ${spec.name}`,
    type: 'integration',
    owner: { github: 'elastic/test', type: 'elastic' },
    ...spec.manifest,
  };
  for (const k of spec.omit ?? []) delete m[k];
  return m;
}

/** Every file of a package by its path relative to the package root. */
export function packageFiles(spec: PackageSpec): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  files.set('manifest.yml', Buffer.from(spec.rawManifest ?? YAML.stringify(manifestOf(spec))));
  if (spec.readme !== false) files.set('docs/README.md', Buffer.from(spec.readme ?? `# ${spec.name}\n\nA test package.\n`));
  for (const [dir, m] of Object.entries(spec.dataStreams ?? {})) files.set(`data_stream/${dir}/manifest.yml`, Buffer.from(YAML.stringify(m)));
  for (const [rel, content] of Object.entries(spec.files ?? {})) files.set(rel, Buffer.isBuffer(content) ? content : Buffer.from(content));
  return files;
}

/**
 * Writes `<root>/<name>/<version>/...` (or another folder, to make the folder
 * disagree with the manifest) and returns the package directory.
 */
export function writeDirPackage(root: string, spec: PackageSpec, folder?: { name: string; version: string }): string {
  const dir = path.join(root, folder?.name ?? spec.name, folder?.version ?? spec.version);
  for (const [rel, content] of packageFiles(spec)) {
    const abs = path.join(dir, ...rel.split('/'));
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
  }
  return dir;
}

export interface ZipOptions {
  /** Write `<zip>.sig` next to it (default true). */
  signature?: boolean;
  /** Top folder inside the zip (default `<name>-<version>`). */
  topFolder?: string;
  /** File name of the zip (default `<name>-<version>.zip`). */
  fileName?: string;
  /** Extra entries by full entry name (not below the top folder). */
  rawEntries?: Record<string, string>;
  /** Add directory entries (default true). */
  directoryEntries?: boolean;
}

export function zipBuffer(entries: Array<{ name: string; content?: Buffer; directory?: boolean }>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const mtime = new Date('2021-01-01T00:00:00Z');
  for (const e of entries) {
    if (e.directory) zip.addEmptyDirectory(e.name, { mtime });
    else zip.addBuffer(e.content ?? Buffer.alloc(0), e.name, { mtime });
  }
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

function zipEntriesOf(spec: PackageSpec, opts: ZipOptions): Array<{ name: string; content?: Buffer; directory?: boolean }> {
  const top = opts.topFolder ?? `${spec.name}-${spec.version}`;
  const entries: Array<{ name: string; content?: Buffer; directory?: boolean }> = [];
  const dirs = new Set<string>();
  const files = [...packageFiles(spec)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (opts.directoryEntries !== false) entries.push({ name: `${top}/`, directory: true });
  for (const [rel, content] of files) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length && opts.directoryEntries !== false; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) { dirs.add(d); entries.push({ name: `${top}/${d}/`, directory: true }); }
    }
    entries.push({ name: `${top}/${rel}`, content });
  }
  for (const [name, content] of Object.entries(opts.rawEntries ?? {})) entries.push({ name, content: Buffer.from(content) });
  return entries;
}

/** Writes `<root>/<name>-<version>.zip` (and its .sig unless told not to); returns the zip path. */
export async function writeZipPackage(root: string, spec: PackageSpec, opts: ZipOptions = {}): Promise<string> {
  const file = path.join(root, opts.fileName ?? `${spec.name}-${spec.version}.zip`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, await zipBuffer(zipEntriesOf(spec, opts)));
  if (opts.signature !== false) fs.writeFileSync(`${file}.sig`, `-----BEGIN PGP SIGNATURE-----\nsignature of ${spec.name}-${spec.version}\n-----END PGP SIGNATURE-----\n`);
  return file;
}

/**
 * A zip package with one entry named `<name>-<version>/../evil.txt`. yazl
 * refuses such names, so the entry is written under a placeholder of the same
 * length and the name bytes are patched in the local header and the central
 * directory.
 */
export async function writeZipSlipPackage(root: string, spec: PackageSpec): Promise<string> {
  const top = `${spec.name}-${spec.version}`;
  const placeholder = `${top}/XX/evil.txt`;
  const evil = `${top}/../evil.txt`;
  const buf = await zipBuffer([...zipEntriesOf(spec, {}), { name: placeholder, content: Buffer.from('evil\n') }]);
  const from = Buffer.from(placeholder);
  const to = Buffer.from(evil);
  let patched = 0;
  for (let i = buf.indexOf(from); i >= 0; i = buf.indexOf(from, i + 1)) { to.copy(buf, i); patched++; }
  if (patched !== 2) throw new Error(`expected the entry name twice in the zip, found it ${patched} times`);
  const file = path.join(root, `${top}.zip`);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(file, buf);
  fs.writeFileSync(`${file}.sig`, 'sig\n');
  return file;
}

/** A config.yml in `dir` listing the package paths; returns its path. */
export function writeConfig(dir: string, packagePaths: string[], extra = ''): string {
  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(file, `package_paths:\n${packagePaths.map((p) => `  - ${JSON.stringify(p)}\n`).join('')}${extra}`);
  return file;
}

/** A 1x1 PNG. */
export const PNG_1x1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
