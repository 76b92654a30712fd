import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import yauzl from 'yauzl';
import { scanPackagePath } from '../server/packages/scan.js';
import { walkFiles } from '../server/packages/source.js';

/**
 * The shape of a package tree, measured the way the "Small images" issue
 * gives the real storage's: versions per package, files and bytes per
 * version, file sizes, the PNG share, manifest sizes, data streams, how much
 * of it is distinct content, and what gzip -1 makes of it.
 */
export interface Spread { p50: number; p90: number; p99: number; max: number; mean: number }

export interface TreeStats {
  packages: number;
  versions: number;
  zips: number;
  files: number;
  bytes: number;
  versionsPerPackage: Spread;
  filesPerVersion: Spread;
  bytesPerVersion: Spread;
  fileSize: Spread;
  manifestSize: Spread;
  dataStreamsPerVersion: Spread;
  /** share of the bytes in .png files */
  pngShare: number;
  distinct: { files: number; bytes: number; pngBytes: number };
  /**
   * gzip -1 of every file on its own, summed: close to `tar | gzip -1` of the
   * tree (`tree`) and of a tar that holds each distinct content once (`distinct`).
   */
  gzip1: { tree: number; distinct: number };
  /** bytes of the zip packages as stored (compressed), and of their .sig files */
  zipBytes: number;
}

function spread(values: number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] ?? 0, mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0 };
}

interface Content { size: number; gz: number; png: boolean }

function readZipEntries(file: string): Promise<Array<[string, Buffer]>> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) { reject(err ?? new Error(`cannot open ${file}`)); return; }
      const out: Array<[string, Buffer]> = [];
      zip.on('entry', (e: yauzl.Entry) => {
        if (e.fileName.endsWith('/')) { zip.readEntry(); return; }
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) { reject(err2 ?? new Error('cannot read entry')); return; }
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => { out.push([e.fileName.slice(e.fileName.indexOf('/') + 1), Buffer.concat(chunks)]); zip.readEntry(); });
          stream.on('error', reject);
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** Measures every package below the given package paths (directories and zips, any depth). */
export async function measureTree(roots: string[]): Promise<TreeStats> {
  const contents = new Map<string, Content>();
  const versionsOf = new Map<string, number>();
  const filesPer: number[] = [];
  const bytesPer: number[] = [];
  const sizes: number[] = [];
  const manifests: number[] = [];
  const streams: number[] = [];
  let files = 0;
  let bytes = 0;
  let pngBytes = 0;
  let gzTree = 0;
  let zips = 0;
  let zipBytes = 0;
  const account = (name: string, entries: Iterable<[string, Buffer]>) => {
    versionsOf.set(name, (versionsOf.get(name) ?? 0) + 1);
    let n = 0;
    let b = 0;
    let ds = 0;
    for (const [rel, content] of entries) {
      n++;
      b += content.length;
      sizes.push(content.length);
      if (rel === 'manifest.yml') manifests.push(content.length);
      if (/^data_stream\/[^/]+\/manifest\.yml$/.test(rel)) ds++;
      const png = rel.toLowerCase().endsWith('.png');
      if (png) pngBytes += content.length;
      const key = crypto.createHash('sha1').update(content).digest('hex');
      let c = contents.get(key);
      if (!c) {
        c = { size: content.length, gz: zlib.deflateRawSync(content, { level: 1 }).length, png };
        contents.set(key, c);
      }
      gzTree += c.gz;
    }
    filesPer.push(n);
    bytesPer.push(b);
    streams.push(ds);
    files += n;
    bytes += b;
  };
  for (const root of roots) {
    const found = scanPackagePath(root);
    for (const dir of found.directories) {
      const list = walkFiles(dir).map((f): [string, Buffer] => [f.path, fs.readFileSync(path.join(dir, ...f.path.split('/')))]);
      account(path.basename(path.dirname(dir)), list);
    }
    for (const z of found.zips) {
      zips++;
      zipBytes += fs.statSync(z).size + (fs.existsSync(`${z}.sig`) ? fs.statSync(`${z}.sig`).size : 0);
      const name = /^(.*?)-\d+\.\d+\.\d+[^/]*\.zip$/.exec(path.basename(z))?.[1] ?? path.basename(z);
      account(name, await readZipEntries(z));
    }
  }
  let distinctBytes = 0;
  let distinctPng = 0;
  let gzDistinct = 0;
  for (const c of contents.values()) {
    distinctBytes += c.size;
    gzDistinct += c.gz;
    if (c.png) distinctPng += c.size;
  }
  return {
    packages: versionsOf.size,
    versions: filesPer.length,
    zips,
    files,
    bytes,
    versionsPerPackage: spread([...versionsOf.values()]),
    filesPerVersion: spread(filesPer),
    bytesPerVersion: spread(bytesPer),
    fileSize: spread(sizes),
    manifestSize: spread(manifests),
    dataStreamsPerVersion: spread(streams),
    pngShare: bytes ? pngBytes / bytes : 0,
    distinct: { files: contents.size, bytes: distinctBytes, pngBytes: distinctPng },
    gzip1: { tree: gzTree, distinct: gzDistinct },
    zipBytes,
  };
}

function kb(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(n < 10_000 ? 1 : 0)} KB`;
}

/** The statistics in the words of the issue, one line each. */
export function formatStats(s: TreeStats): string {
  const pct = (a: number, b: number) => `${((100 * a) / Math.max(1, b)).toFixed(1)}%`;
  return [
    `  ${s.versions} versions of ${s.packages} packages (${s.zips} zips), ${s.files} files, ${kb(s.bytes)}`,
    `  versions per package p50 ${s.versionsPerPackage.p50}, p90 ${s.versionsPerPackage.p90}, max ${s.versionsPerPackage.max}`,
    `  files per version p50 ${s.filesPerVersion.p50}, p90 ${s.filesPerVersion.p90}, max ${s.filesPerVersion.max}`,
    `  bytes per version p50 ${kb(s.bytesPerVersion.p50)}, p90 ${kb(s.bytesPerVersion.p90)}, max ${kb(s.bytesPerVersion.max)}`,
    `  file size p50 ${kb(s.fileSize.p50)}, p99 ${kb(s.fileSize.p99)}, max ${kb(s.fileSize.max)}; PNG ${pct(s.pngShare, 1)} of the bytes`,
    `  manifest.yml p50 ${kb(s.manifestSize.p50)}, p90 ${kb(s.manifestSize.p90)}; data streams per version p50 ${s.dataStreamsPerVersion.p50}, p90 ${s.dataStreamsPerVersion.p90}, max ${s.dataStreamsPerVersion.max}`,
    `  distinct: ${s.distinct.files} files (${pct(s.distinct.files, s.files)}), ${kb(s.distinct.bytes)} (${pct(s.distinct.bytes, s.bytes)}; PNG ${pct(s.distinct.pngBytes, s.distinct.bytes)} of it)`,
    `  gzip -1, file by file: the tree ${kb(s.gzip1.tree)} (${pct(s.gzip1.tree, s.bytes)}), each distinct content once ${kb(s.gzip1.distinct)} (${pct(s.gzip1.distinct, s.distinct.bytes)})`,
  ].join('\n');
}
