/**
 * The image figures of `npm run bench`: what the builder's OCI store gives
 * on every target, over the corpus, with the builder's defaults.
 *
 * - production built and pushed with --no-engine against `tar | gzip -1` of
 *   the same tree; the image's bytes (compressed layers, as a registry keeps
 *   them) against the tree's;
 * - the same push again with nothing changed (blobs uploaded: 0);
 * - a full bundle of snapshot, then an update bundle after one changed
 *   package (--since the full one);
 * - production built into a classic-store engine and into a containerd-store
 *   engine, and `docker save | gzip -1` of the classic one;
 * - a snapshot rebuild after one changed package, on the classic engine.
 *
 * Figures are printed, never asserted. Everything made is removed at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DIST_ROOT, PROJECT_ROOT } from '../server/config.js';
import { freePort } from '../test/helpers/builder-cli.js';

const CLI = path.join(DIST_ROOT, 'builder', 'cli.js');
const SHARED_CI = path.join(PROJECT_ROOT, '..', 'shared', 'ci');
const CONTAINERD_SOCKET = '/run/docker-containerd.sock';
/** a fixed image time: the corpus is no commit, and an unchanged tree must give the same image */
const SOURCE_DATE_EPOCH = '1767225600';

interface Summary {
  digest: string; storedBytes: number; tags: string[];
  packed: { layers: number; bytes: number };
  push?: { blobsSent: number; bytesSent: number; blobsPresent: number };
  pushedBase?: string;
  saved?: { bytes: number; fullBytes?: number; blobsLeftOut?: number };
  layersSent?: number; layersReused?: number;
  timings: Record<string, number>;
  layers?: Array<{ name: string; treeBytes?: number; tarBytes?: number; files?: number; distinctFiles?: number; parts?: number; biggestPart?: number }>;
}

export interface ImageRun { seconds: number; summary: Summary }

export interface ImageFigures {
  skipped?: string;
  tarGzip?: { seconds: number; bytes: number };
  treeBytes?: number;
  noEnginePush?: ImageRun;
  rePush?: ImageRun;
  fullBundle?: ImageRun;
  updateBundle?: ImageRun;
  classic?: ImageRun;
  dockerSaveGzipBytes?: number;
  containerd?: ImageRun;
  snapshotRebuild?: ImageRun;
  notes: string[];
}

function build(def: string, cacheDir: string, extra: string[], env: Record<string, string> = {}): ImageRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, 'build', def, '--json', '--published-from', 'local', '--cache-dir', cacheDir, ...extra], {
    encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 << 20, env: { ...process.env, SOURCE_DATE_EPOCH, ...env },
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`build ${path.basename(def)} ${extra.join(' ')} failed: ${(r.stderr ?? '').trim().split('\n').slice(0, 3).join(' ')}`);
  return { seconds, summary: JSON.parse(r.stdout) as Summary };
}

/** Seconds and stdout bytes of a shell pipeline. */
function pipe(command: string, cwd?: string): { seconds: number; bytes: number } {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', `${command} | wc -c`], { encoding: 'utf8', cwd, timeout: 30 * 60_000 });
  if (r.status !== 0) throw new Error(`${command} failed: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`);
  return { seconds: (performance.now() - t0) / 1000, bytes: Number(r.stdout.trim()) };
}

function treeBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', '--apparent-size', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]);
}

export async function benchImages(corpus: string, log: (line: string) => void): Promise<ImageFigures> {
  const notes: string[] = [];
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0) return { skipped: 'no Docker engine answers', notes };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-bench-images-'));
  const port = await freePort();
  const reg = spawnSync('bash', [path.join(SHARED_CI, 'registry-up.sh'), String(port)], { encoding: 'utf8', timeout: 120_000 });
  if (reg.status !== 0) return { skipped: `no registry: ${reg.stderr.trim().split('\n').pop()}`, notes };
  const registryPid = Number(reg.stdout.trim().split('\n').pop());
  const repo = `127.0.0.1:${port}/epr-bench/images`;
  const define = (name: string, layers: Array<[string, string]>) => {
    const file = path.join(work, `${name}.yml`);
    fs.writeFileSync(file, [`name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:',
      ...layers.flatMap(([n, dir]) => [`  - name: ${n}`, '    source:', `      directory: ${dir}`]), ''].join('\n'));
    return file;
  };
  const noEngine = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
  const cache = (n: string) => fs.mkdtempSync(path.join(work, `cache-${n}-`));
  const figures: ImageFigures = { notes };
  const snapLayer = path.join(corpus, 'snapshot');
  let restore: (() => void) | undefined;
  try {
    // not measured: the base image, built by an engine and pushed next to the distributions
    const warm = build(define('warm', [['production', path.join(PROJECT_ROOT, 'distributions', 'layers', 'production')]]), cache('warm'), ['--push']);
    // named outright: a --no-engine build finds it by itself, but not when server/ changes during the run
    const base = warm.summary.pushedBase!;
    const prod = define('production', [['production', path.join(corpus, 'production')]]);
    const snap = define('snapshot', ['production', 'staging', 'snapshot'].map((l) => [l, path.join(corpus, l)] as [string, string]));

    figures.treeBytes = treeBytes(path.join(corpus, 'production'));
    // tar | gzip first: both then read the tree from the page cache
    figures.tarGzip = pipe('tar -cf - production | gzip -1', corpus);
    const ne = cache('no-engine');
    figures.noEnginePush = build(prod, ne, ['--no-engine', '--base', base, '--push'], noEngine);
    figures.rePush = build(prod, ne, ['--no-engine', '--base', base, '--push'], noEngine);
    log(`images: production --no-engine --push ${figures.noEnginePush.seconds.toFixed(1)} s (tar | gzip -1 ${figures.tarGzip.seconds.toFixed(1)} s), again unchanged: ${figures.rePush.summary.push?.blobsSent} blob(s) uploaded`);

    const full = path.join(work, 'snapshot-full.tar');
    figures.fullBundle = build(snap, ne, ['--no-engine', '--base', base, '--save', full], noEngine);
    const name = fs.readdirSync(snapLayer, { withFileTypes: true }).find((e) => e.isDirectory() && !e.name.startsWith('.'))!.name;
    const version = fs.readdirSync(path.join(snapLayer, name)).find((v) => !v.startsWith('.'))!;
    const readme = path.join(snapLayer, name, version, 'docs', 'README.md');
    const original = fs.readFileSync(readme);
    restore = () => fs.writeFileSync(readme, original);
    fs.appendFileSync(readme, `\nChanged for the image benchmark at ${new Date().toISOString()}.\n`);
    figures.updateBundle = build(snap, ne, ['--no-engine', '--base', base, '--save', path.join(work, 'snapshot-update.tar'), '--since', full], noEngine);
    restore();
    restore = undefined;
    log(`images: snapshot bundle ${(figures.fullBundle.summary.saved!.bytes / 1e6).toFixed(1)} MB, update after one changed package ${(figures.updateBundle.summary.saved!.bytes / 1e6).toFixed(2)} MB`);

    figures.classic = build(prod, cache('classic'), []);
    figures.dockerSaveGzipBytes = pipe(`docker save ${figures.classic.summary.tags[0]} | gzip -1`).bytes;
    // only an engine already running: starting one deletes a running classic engine's bridge (docker0)
    const cdUp = spawnSync('curl', ['-sf', '-m', '5', '--unix-socket', CONTAINERD_SOCKET, 'http://localhost/_ping'], { encoding: 'utf8' });
    if (cdUp.status === 0) {
      const env = { DOCKER_HOST: `unix://${CONTAINERD_SOCKET}` };
      spawnSync('bash', [path.join(SHARED_CI, 'node-base-image.sh')], { stdio: 'ignore', env: { ...process.env, ...env }, timeout: 600_000 });
      const cdCache = cache('containerd');
      build(define('warm', [['production', path.join(PROJECT_ROOT, 'distributions', 'layers', 'production')]]), cdCache, [], env);
      figures.containerd = build(prod, cdCache, [], env);
    } else {
      notes.push(`no containerd-store engine answers on ${CONTAINERD_SOCKET} (start it with ../shared/ci/docker-containerd-up.sh before the classic engine)`);
    }

    // one changed package on top of the earlier snapshot image, classic engine
    const sc = cache('snapshot');
    build(snap, sc, []);
    fs.appendFileSync(readme, `\nChanged for the image benchmark at ${new Date().toISOString()}.\n`);
    restore = () => fs.writeFileSync(readme, original);
    figures.snapshotRebuild = build(snap, sc, []);
    log(`images: classic ${figures.classic.seconds.toFixed(1)} s, containerd ${figures.containerd?.seconds.toFixed(1) ?? 'n/a'} s, snapshot rebuild after one change ${figures.snapshotRebuild.seconds.toFixed(1)} s`);
    return figures;
  } catch (err) {
    return { ...figures, skipped: (err as Error).message };
  } finally {
    restore?.();
    try { process.kill(registryPid); } catch { /* gone */ }
    for (const host of [undefined, `unix://${CONTAINERD_SOCKET}`]) {
      const env = { ...process.env, ...(host ? { DOCKER_HOST: host } : {}) };
      const ids = spawnSync('docker', ['images', '-q', repo], { encoding: 'utf8', env }).stdout?.split('\n').filter(Boolean) ?? [];
      if (ids.length) spawnSync('docker', ['rmi', '-f', ...new Set(ids)], { stdio: 'ignore', env });
    }
    spawnSync('rm', ['-rf', work]);
  }
}

const mb = (n: number | undefined) => (n === undefined ? 'n/a' : `${(n / 1e6).toFixed(1)} MB`);
const pct = (a: number | undefined, b: number | undefined) => (a === undefined || !b ? 'n/a' : `${((100 * a) / b).toFixed(1)}%`);
const secs = (r: ImageRun | undefined) => (r ? `${r.seconds.toFixed(1)} s` : 'n/a');

/** The README table rows. */
export function imageRows(f: ImageFigures): string[] {
  if (f.skipped && !f.noEnginePush) return [`Image figures skipped: ${f.skipped}.`];
  const p = f.noEnginePush?.summary;
  const layers = p?.layers?.reduce((n, l) => n + (l.tarBytes ?? 0), 0) || undefined;
  const files = p?.layers?.[0];
  const rows = [
    '| images (production unless named) | figure | against |',
    '|---|--:|---|',
    `| production tree | ${mb(f.treeBytes)} | \`tar \\| gzip -1\`: ${mb(f.tarGzip?.bytes)} in ${f.tarGzip?.seconds.toFixed(1)} s |`,
    `| package layer tars (each distinct file once, zips as recipes) | ${mb(layers)} | ${pct(layers, f.treeBytes)} of the tree; ${files?.distinctFiles ?? 'n/a'} distinct of ${files?.files ?? 'n/a'} files; ${files?.parts ?? 'n/a'} part(s), the biggest ${mb(files?.biggestPart)} |`,
    `| image as a registry stores it (compressed layers, base included) | ${mb(p?.storedBytes)} | package layers: ${mb(p ? p.packed.bytes : undefined)}, ${pct(p?.packed.bytes, f.treeBytes)} of the tree |`,
    `| \`--no-engine --push\`, empty builder cache | ${secs(f.noEnginePush)} | ${(f.noEnginePush && f.tarGzip) ? (f.noEnginePush.seconds / f.tarGzip.seconds).toFixed(2) : 'n/a'}× \`tar \\| gzip -1\`; ${p?.push?.blobsSent ?? 'n/a'} blobs uploaded (${mb(p?.push?.bytesSent)}) |`,
    `| the same push again, nothing changed | ${secs(f.rePush)} | ${f.rePush?.summary.push?.blobsSent ?? 'n/a'} blobs uploaded, ${f.rePush?.summary.push?.blobsPresent ?? 'n/a'} already there |`,
    `| classic-store engine build, empty builder cache | ${secs(f.classic)} | \`docker save \\| gzip -1\` of it: ${mb(f.dockerSaveGzipBytes)} |`,
    `| containerd-store engine build, empty builder cache | ${secs(f.containerd)} | classic: ${secs(f.classic)} |`,
    `| snapshot bundle (--save) | ${mb(f.fullBundle?.summary.saved?.bytes)} | |`,
    `| update bundle after one changed snapshot package (--since the full one) | ${mb(f.updateBundle?.summary.saved?.bytes)} | ${pct(f.updateBundle?.summary.saved?.bytes, f.updateBundle?.summary.saved?.fullBytes)} of the full bundle (${mb(f.updateBundle?.summary.saved?.fullBytes)}) |`,
    `| snapshot rebuild after one changed package, classic engine | ${secs(f.snapshotRebuild)} | layers packed ${f.snapshotRebuild?.summary.packed.layers ?? 'n/a'} (${mb(f.snapshotRebuild?.summary.packed.bytes)}) |`,
  ];
  for (const n of [...f.notes, ...(f.skipped ? [`stopped early: ${f.skipped}`] : [])]) rows.push('', `Note: ${n}`);
  return rows;
}
