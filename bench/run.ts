#!/usr/bin/env node
/**
 * npm run bench [-- --smoke] : the registry's speed and memory, side by side
 * with nginx serving the very same response bytes (the physical limit on
 * this machine), written to bench/results/ as Markdown and JSON.
 *
 * The server runs as the image runs it: no flags, the image's environment,
 * one access-log line per request written to a pipe that this process
 * drains; the same server with `--log-level warn` is an extra column.
 * The corpus is the real-shaped one of bench/corpus.ts.
 *
 * Measures: cold start to the first /health 200 (scanning vs baked index) and
 * RSS after start; requests/s and p50/p99 latency with wrk at a fixed
 * concurrency for the routes Fleet hits most; RSS under that load.
 * Figures are printed and recorded, never asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generateMeasuredCorpus, STATS_FILE } from './corpus.js';
import type { TreeStats } from './corpus-stats.js';
import { BAKED_INDEX_FILE } from '../server/packages/baked.js';
import { DIST_ROOT, PROJECT_ROOT } from '../server/config.js';
import { benchImages, imageRows, type ImageFigures } from './images.js';

/** The compiled tree this file runs from (dist/ or another dist-*), and the project around it. */
const ROOT = PROJECT_ROOT;
const SERVER = path.join(DIST_ROOT, 'server', 'main.js');
const BAKE = path.join(DIST_ROOT, 'server', 'bake.js');
const BUILDER_CLI = path.join(DIST_ROOT, 'builder', 'cli.js');
const LAYERS = ['production', 'staging', 'snapshot'];
/** Bumped when the generator makes another corpus from the same options: an older corpus is made again. */
const CORPUS_GENERATION = 3;

interface Options {
  smoke: boolean;
  /** skip section 4 (the Docker builder figures), so the server part runs alone */
  skipBuilder: boolean;
  /** package versions in the corpus, over all layers */
  versions: number;
  /** seconds of each measured wrk run */
  duration: number;
  /** measured rounds per route, each one run of every server in turn */
  rounds: number;
  connections: number;
  corpus: string;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const smoke = argv.includes('--smoke');
  const o: Options = {
    smoke,
    skipBuilder: argv.includes('--skip-builder'),
    versions: smoke ? 120 : 2400,
    duration: smoke ? 1 : 3,
    rounds: smoke ? 1 : 3,
    connections: 32,
    corpus: '',
    out: path.join(ROOT, 'bench', 'results'),
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--smoke': case '--skip-builder': break;
      case '--versions': o.versions = Number(value()); break;
      case '--duration': o.duration = Number(value()); break;
      case '--rounds': o.rounds = Number(value()); break;
      case '--connections': o.connections = Number(value()); break;
      case '--corpus': o.corpus = path.resolve(value()); break;
      case '--out': o.out = path.resolve(value()); break;
      case '--help': case '-h':
        process.stdout.write('Usage: npm run bench -- [--smoke] [--skip-builder] [--versions N] [--duration S] [--rounds R] [--connections C] [--corpus DIR] [--out DIR]\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  if (!Number.isInteger(o.versions) || o.versions < 1) throw new Error('--versions must be a whole number of at least 1');
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error('--rounds must be a whole number of at least 1');
  o.corpus ||= path.join(ROOT, 'bench', 'corpus', String(o.versions));
  return o;
}

function log(msg: string): void {
  process.stdout.write(`bench: ${msg}\n`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

interface CorpusInfo { generation: number; versions: number; packages: number; zips: number; overlaps: number; files: number; bytes: number; stats: TreeStats }

function ensureCorpus(o: Options): Promise<CorpusInfo> | CorpusInfo {
  const stamp = path.join(o.corpus, '.corpus.json');
  if (fs.existsSync(stamp)) {
    const known = JSON.parse(fs.readFileSync(stamp, 'utf8')) as CorpusInfo;
    if (known.generation === CORPUS_GENERATION && fs.existsSync(path.join(o.corpus, STATS_FILE))) return known;
  }
  fs.rmSync(o.corpus, { recursive: true, force: true });
  log(`generating a real-shaped corpus of ${o.versions} package versions in ${o.corpus}`);
  return generateMeasuredCorpus({ out: o.corpus, versions: o.versions, layers: LAYERS, seed: 1 }).then((res) => {
    const info: CorpusInfo = { generation: CORPUS_GENERATION, ...res };
    fs.writeFileSync(stamp, JSON.stringify(info));
    return info;
  });
}

function rssKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

async function waitHealthy(url: string, child: ChildProcess, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.status === 200) return performance.now() - t0;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`server not healthy within ${timeoutMs} ms`);
}

interface RunningServer { child: ChildProcess; url: string; readyMs: number; /** lines the server wrote to stdout and stderr so far */ logLines: () => number }

/**
 * Starts the server as the image does (Dockerfile.base and
 * Dockerfile.distribution): no flags, the image's environment, stdout and
 * stderr to pipes that are drained here as the engine's log collector
 * drains a container's. `extra` flags make the variants (`--log-level warn`).
 */
async function startServer(config: string, extra: string[] = []): Promise<RunningServer> {
  const port = await freePort();
  const t0 = performance.now();
  const env = { ...process.env, NODE_ENV: 'production', EPR_CONFIG: config, EPR_DISABLE_PACKAGE_VALIDATION: 'true', EPR_ADDRESS: `127.0.0.1:${port}` };
  const child = spawn(process.execPath, [SERVER, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let lines = 0;
  let tail = '';
  const drain = (c: Buffer) => {
    for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
    tail = (tail + c.toString('utf8', Math.max(0, c.length - 4096))).slice(-4096);
  };
  child.stdout!.on('data', drain);
  child.stderr!.on('data', drain);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(url, child, 120_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; its last output:\n${tail}`);
  }
  return { child, url, readyMs: performance.now() - t0, logLines: () => lines };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

function setBaked(corpus: string, on: boolean): void {
  for (const l of LAYERS) {
    const f = path.join(corpus, l, BAKED_INDEX_FILE);
    if (on) {
      const r = spawnSync(process.execPath, [BAKE, path.join(corpus, l)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`baking ${l} failed: ${r.stderr}`);
    } else {
      fs.rmSync(f, { force: true });
    }
  }
}

interface WrkResult { rps: number; p50ms: number; p99ms: number; errors: number; requests: number }

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

/** A measured wrk run, after an unmeasured second of the same load when `warm` (the JIT, caches and connections warm up for every server alike). */
async function wrk(url: string, o: Options, warm: boolean): Promise<WrkResult> {
  if (warm) await wrkRun(url, { ...o, duration: 1 });
  return wrkRun(url, o);
}

async function wrkRun(url: string, o: Options): Promise<WrkResult> {
  const child = spawn('wrk', ['-t2', `-c${o.connections}`, `-d${o.duration}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), (o.duration + 30) * 1000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`wrk failed: ${err || `exit ${code}`}`);
  const pct = (p: string) => toMs((new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out) ?? [])[1] ?? '');
  const errs = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number((/Requests\/sec:\s+([\d.]+)/.exec(out) ?? [])[1] ?? NaN),
    requests: Number((/(\d+) requests in/.exec(out) ?? [])[1] ?? NaN),
    p50ms: pct('50'),
    p99ms: pct('99'),
    errors: (errs ? Number(errs[1]) : 0) + (sock ? sock.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0),
  };
}

interface Target { label: string; path: string; body?: Buffer; contentType?: string; cacheControl?: string }

async function startNginx(targets: Target[]): Promise<{ child: ChildProcess; url: string; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-bench-nginx-'));
  fs.mkdirSync(path.join(dir, 'b'));
  const port = await freePort();
  const locations = targets.map((t, i) => {
    fs.writeFileSync(path.join(dir, 'b', String(i)), t.body!);
    return `    location = /b/${i} { default_type "${t.contentType}"; add_header Cache-Control "${t.cacheControl}"; add_header Access-Control-Allow-Origin "*"; }`;
  });
  fs.writeFileSync(path.join(dir, 'nginx.conf'), [
    'user root;', 'worker_processes 2;', 'daemon off;', `pid ${dir}/nginx.pid;`, 'error_log stderr warn;',
    'events { worker_connections 4096; }',
    'http {', '  access_log off;', '  sendfile on;', '  tcp_nopush on;', '  keepalive_requests 1000000;', '  types { }',
    `  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;`,
    `  server {`, `    listen 127.0.0.1:${port};`, `    root ${dir};`, ...locations, '  }', '}', '',
  ].join('\n'));
  fs.mkdirSync(path.join(dir, 'tmp'));
  const child = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${url}/b/0`)).status === 200) return { child, url, dir }; } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('nginx did not start');
}

interface BuildRun {
  seconds: number; layersSent?: number; layersReused?: number; timings?: Record<string, number>;
  delta?: { bytes: number; fullBytes: number }; speculation?: string;
}
interface BuilderFigures { skipped?: string; production?: BuildRun; tarGzipS?: number; snapshotFirst?: BuildRun; snapshotRebuild?: BuildRun; snapshotRebuildWhole?: BuildRun; productionUnchanged?: BuildRun }

/** Every image the builder section made: removed at the end, tagged or not, so that the next run's first build is a first build. */
const builtImages = new Set<string>();

/** One timed build with --json: wall seconds, plus the builder's own step timings and layer counts. */
function build(cli: string, def: string, cacheDir: string, ...extra: string[]): BuildRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'build', def, '--json', '--published-from', 'local', '--cache-dir', cacheDir, ...extra], { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`build ${def} failed: ${(r.stderr ?? '').trim().split('\n').slice(0, 3).join(' ')}`);
  const j = JSON.parse(r.stdout) as Omit<BuildRun, 'seconds'> & { image: string };
  builtImages.add(j.image);
  return { seconds, layersSent: j.layersSent, layersReused: j.layersReused, timings: j.timings, delta: j.delta, speculation: j.speculation };
}

function timed(cmd: string, args: string[], opts: { cwd?: string } = {}): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', cwd: opts.cwd, timeout: 30 * 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`);
  return (performance.now() - t0) / 1000;
}

/** Builds the corpus as distributions under a bench-only repository (needs a Docker engine). */
async function benchBuilder(o: Options): Promise<BuilderFigures> {
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0) return { skipped: 'no Docker engine answers' };
  const cli = BUILDER_CLI;
  const defs = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-bench-defs-'));
  const repo = 'epr-bench/distribution';
  const define = (name: string, layers: string[]) => {
    fs.writeFileSync(path.join(defs, `${name}.yml`), [
      `name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:',
      ...layers.flatMap((l) => [`  - name: ${l}`, '    source:', `      directory: ${path.join(o.corpus, l)}`]), '',
    ].join('\n'));
    return path.join(defs, `${name}.yml`);
  };
  const prod = define('production', ['production']);
  const warm = path.join(defs, 'warm.yml');
  fs.writeFileSync(warm, [`name: warm`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:', '  - name: production', '    source:', `      directory: ${path.join(ROOT, 'distributions', 'layers', 'production')}`, ''].join('\n'));
  const snap = define('snapshot', LAYERS);
  // the corpus layers hold baked indexes from the start-up measurement; the builder bakes its own
  setBaked(o.corpus, false);
  // a fresh builder cache: the production figure is a first build (only the base image exists)
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-bench-cache-'));
  try {
    build(cli, warm, cacheDir); // builds the base image if needed: not measured
    // tar | gzip first: both then read the tree from the page cache
    const tarGzipS = timed('sh', ['-c', `tar -cf - production | gzip -1 > /dev/null`], { cwd: o.corpus });
    const production = build(cli, prod, cacheDir);
    const productionUnchanged = build(cli, prod, cacheDir);
    const snapshotFirst = build(cli, snap, cacheDir);
    const snapLayer = path.join(o.corpus, 'snapshot');
    const name = fs.readdirSync(snapLayer, { withFileTypes: true }).find((e) => e.isDirectory() && !e.name.startsWith('.'))!.name;
    const version = fs.readdirSync(path.join(snapLayer, name))[0];
    const readme = path.join(snapLayer, name, version, 'docs', 'README.md');
    const original = fs.readFileSync(readme);
    fs.appendFileSync(readme, `\nChanged for the rebuild benchmark at ${new Date().toISOString()}.\n`);
    let snapshotRebuild: BuildRun;
    let snapshotRebuildWhole: BuildRun;
    try {
      snapshotRebuild = build(cli, snap, cacheDir);
      // the same change with the top layer sent whole (what gives the same image ID on any machine)
      snapshotRebuildWhole = build(cli, snap, cacheDir, '--no-delta');
    } finally {
      fs.writeFileSync(readme, original);
    }
    log(`builder: production ${fmt(production.seconds, 1)} s (tar | gzip -1: ${fmt(tarGzipS, 1)} s), unchanged ${fmt(productionUnchanged.seconds, 1)} s, snapshot ${fmt(snapshotFirst.seconds, 1)} s, snapshot after one change ${fmt(snapshotRebuild.seconds, 1)} s (--no-delta ${fmt(snapshotRebuildWhole.seconds, 1)} s)`);
    return { production, tarGzipS, productionUnchanged, snapshotFirst, snapshotRebuild, snapshotRebuildWhole };
  } catch (err) {
    return { skipped: (err as Error).message };
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
    fs.rmSync(defs, { recursive: true, force: true });
    const images = spawnSync('docker', ['images', '-q', repo], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const id of builtImages) images.push(id);
    if (images.length > 0) spawnSync('docker', ['rmi', '-f', ...new Set(images)], { stdio: 'ignore' });
  }
}

function buildRow(what: string, r: BuildRun): string {
  const steps = Object.entries(r.timings ?? {}).filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ');
  const sent = r.delta ? `${r.layersSent ?? '?'} (a delta: ${fmt(r.delta.bytes / 1e6, 1)} of ${fmt(r.delta.fullBytes / 1e6, 1)} MB)` : `${r.layersSent ?? '?'}`;
  const trust = r.speculation ? `; lower layers taken on trust, ${r.speculation} by their files meanwhile` : '';
  return `| ${what} | ${fmt(r.seconds, 1)} | ${sent} / ${r.layersReused ?? '?'} | ${steps}${trust} |`;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  for (const tool of ['wrk', 'nginx']) {
    if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is not installed (apt-get install -y wrk nginx-light)`);
  }
  if (!fs.existsSync(SERVER)) throw new Error(`${SERVER} is missing: run npm run build first`);
  const loadBefore = os.loadavg();
  const corpus = await ensureCorpus(o);
  // the image's config.yml: the package paths, nothing else
  const config = path.join(o.corpus, 'config.yml');
  fs.writeFileSync(config, `package_paths:\n${LAYERS.map((l) => `  - ${path.join(o.corpus, l)}\n`).join('')}`);

  // 1. start-up: scanning from scratch, then with the baked index. The first
  // start reads a page cache that is usually cold (files unread for a while
  // are paged out on these machines), as a container's first start does; the
  // second shows the same start with the files cached.
  const startup: Record<string, { readyMs: number; rssMb: number }> = {};
  for (const mode of ['scanning', 'scanning again (files cached)', 'baked index'] as const) {
    setBaked(o.corpus, mode === 'baked index');
    const s = await startServer(config);
    startup[mode] = { readyMs: s.readyMs, rssMb: rssKb(s.child.pid!, 'VmRSS') / 1024 };
    log(`start-up (${mode}): ready in ${fmt(s.readyMs)} ms, RSS ${fmt(startup[mode].rssMb, 1)} MB`);
    await stop(s.child);
  }

  // 2. load: the same bytes from the registry as shipped, the registry with --log-level warn, and nginx
  const server = await startServer(config);
  const quiet = await startServer(config, ['--log-level', 'warn']);
  const search = await (await fetch(`${server.url}/search?all=true`)).json() as Array<{ name: string; version: string; path: string }>;
  const dirs = search.filter((p) => !corpusZips(o.corpus).has(`${p.name}-${p.version}`));
  const pkg = dirs[Math.floor(dirs.length / 2)];
  const zipped = search.find((p) => corpusZips(o.corpus).has(`${p.name}-${p.version}`));
  const info = await (await fetch(`${server.url}/package/${pkg.name}/${pkg.version}/`)).json() as { icons?: Array<{ path: string }> };
  const targets: Target[] = [
    { label: '/search', path: '/search' },
    { label: '/search?kibana.version=8.11.0&prerelease=true', path: '/search?kibana.version=8.11.0&prerelease=true' },
    { label: '/search?package={n}&all=true', path: `/search?package=${pkg.name}&all=true` },
    { label: '/categories?include_policy_templates=true', path: '/categories?include_policy_templates=true' },
    { label: 'package info /package/{n}/{v}/', path: `/package/${pkg.name}/${pkg.version}/` },
    { label: 'package file (docs/README.md)', path: `/package/${pkg.name}/${pkg.version}/docs/README.md` },
    ...(info.icons?.[0] ? [{ label: 'package file (icon, svg)', path: info.icons[0].path }] : []),
    { label: 'zip of a folder package (made once, kept)', path: `/epr/${pkg.name}/${pkg.name}-${pkg.version}.zip` },
    ...(zipped ? [{ label: 'zip package (as stored)', path: `/epr/${zipped.name}/${zipped.name}-${zipped.version}.zip` }] : []),
  ];
  for (const t of targets) {
    const r = await fetch(`${server.url}${t.path}`);
    if (r.status !== 200) throw new Error(`${t.path}: ${r.status}`);
    t.body = Buffer.from(await r.arrayBuffer());
    t.contentType = r.headers.get('content-type') ?? 'application/octet-stream';
    t.cacheControl = r.headers.get('cache-control') ?? '';
  }
  const nginx = await startNginx(targets);
  const rows: Row[] = [];
  for (const [i, t] of targets.entries()) {
    // the three servers take turns, round after round, so that whatever else the machine does
    // meanwhile weighs on all of them alike; each gets one unmeasured second before its first round
    const rounds: Round[] = [];
    let peak = 0;
    let logLines = 0;
    for (let k = 0; k < o.rounds; k++) {
      const sampler = setInterval(() => { peak = Math.max(peak, rssKb(server.child.pid!, 'VmRSS')); }, 100);
      const linesBefore = server.logLines();
      const reg = await wrk(`${server.url}${t.path}`, o, k === 0);
      clearInterval(sampler);
      // the log lines of the warm-up second and the measured run: at least one per request
      logLines += server.logLines() - linesBefore;
      const warn = await wrk(`${quiet.url}${t.path}`, o, k === 0);
      const ngx = await wrk(`${nginx.url}/b/${i}`, o, k === 0);
      rounds.push({ registry: reg, warn, nginx: ngx });
    }
    const row = rowOf(t.label, t.body!.length, rounds, peak / 1024, logLines);
    rows.push(row);
    log(`${t.label}: ${fmt(row.registry.rps)} req/s as shipped (${fmt(row.ratio, 2)} of nginx ${fmt(row.nginx.rps)}), p99 ${fmt(row.registry.p99ms, 2)} ms; --log-level warn ${fmt(row.warn.rps)} req/s (${fmt(row.warnRatio, 2)}); ${fmt(logLines)} access-log lines; RSS ${fmt(row.rssMb, 1)} MB`);
  }
  await stop(server.child);
  await stop(quiet.child);
  await stop(nginx.child);
  fs.rmSync(nginx.dir, { recursive: true, force: true });

  // 4. builder: the production layer against tar | gzip -1 of the same tree; a snapshot rebuild after one change
  if (o.skipBuilder) setBaked(o.corpus, false); // leave the corpus as the builder section would
  const builder: BuilderFigures = o.skipBuilder ? { skipped: '--skip-builder' } : await benchBuilder(o);
  // 5. images: every target of the builder's store (bench/images.ts)
  const previous = readPrevious(path.join(o.out, o.smoke ? 'smoke' : 'latest'));
  const images: ImageFigures = o.skipBuilder ? { skipped: '--skip-builder', notes: [] } : await benchImages(o.corpus, log);
  const loadAfter = os.loadavg();

  // 3. report
  const when = new Date().toISOString();
  const result = { when, options: o, corpus, startup, rows, builder, images, machine: { cpus: os.cpus().length, node: process.version, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter } };
  const st = corpus.stats;
  const loads = (l: number[]) => l.map((x) => fmt(x, 2)).join(' / ');
  const md = [
    `## Benchmark ${when}${o.smoke ? ' (smoke)' : ''}`,
    '',
    `Corpus (bench/corpus.ts, real-shaped): ${fmt(st.versions)} package versions of ${fmt(st.packages)} packages over ${LAYERS.join(', ')} (${fmt(st.zips)} of them signed zips, ${fmt(corpus.overlaps)} name+version pairs in two layers), ${fmt(st.files)} files, ${fmt(st.bytes / 1e6, 0)} MB; per version p50 / p90 / max: ${st.filesPerVersion.p50} / ${st.filesPerVersion.p90} / ${st.filesPerVersion.max} files, ${fmt(st.bytesPerVersion.p50 / 1e3)} KB / ${fmt(st.bytesPerVersion.p90 / 1e6, 1)} MB / ${fmt(st.bytesPerVersion.max / 1e6, 1)} MB, ${st.dataStreamsPerVersion.p50} / ${st.dataStreamsPerVersion.p90} / ${st.dataStreamsPerVersion.max} data streams; ${fmt(100 * st.pngShare)}% of the bytes PNG; distinct content ${fmt((100 * st.distinct.bytes) / st.bytes)}% of the bytes.`,
    '',
    `Machine: ${os.cpus().length} cores, Node ${process.version}, load average (1 / 5 / 15 min) ${loads(loadBefore)} when the run began, ${loads(loadAfter)} at its end (other work on the machine makes every figure slower). Server: as the image runs it (no flags, NODE_ENV=production, validation off, one ECS access-log line per request to a pipe drained by the bench); the "warn" columns are the same server with \`--log-level warn\`. Load: wrk -t2 -c${o.connections} -d${o.duration}s on 127.0.0.1 (sharing the cores with the server), ${o.rounds} round(s) per route in which the three servers take turns, after one unmeasured second of the same load for each; req/s and latency are each server's median round, "vs nginx" the median of the rounds' ratios.`,
    '',
    '| start-up (as shipped) | ready (first /health 200) | RSS after start |',
    '|---|---|---|',
    ...Object.entries(startup).map(([k, v]) => `| ${k} | ${fmt(v.readyMs)} ms | ${fmt(v.rssMb, 1)} MB |`),
    '',
    '| route | bytes | as shipped req/s | vs nginx | p50 / p99 | `--log-level warn` req/s | vs nginx | p99 | nginx req/s | nginx p99 | RSS under load |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map((r) => `| ${r.label} | ${fmt(r.bytes)} | ${fmt(r.registry.rps)} | ${fmt(r.ratio, 2)} | ${fmt(r.registry.p50ms, 2)} / ${fmt(r.registry.p99ms, 2)} ms | ${fmt(r.warn.rps)} | ${fmt(r.warnRatio, 2)} | ${fmt(r.warn.p99ms, 2)} ms | ${fmt(r.nginx.rps)} | ${fmt(r.nginx.p99ms, 2)} ms | ${fmt(r.rssMb, 1)} MB |`),
    '',
    ...(builder.skipped ? [`Builder: not measured (${builder.skipped}).`, ''] : [
      '| builder (wall time of `npm run build:distribution`, base image present) | seconds | layers sent / reused | where the time went |',
      '|---|---|---|---|',
      buildRow('production image, first build (empty builder cache)', builder.production!),
      `| \`tar -cf - production \\| gzip -1 > /dev/null\` of the same tree | ${fmt(builder.tarGzipS!, 1)} | | ratio ${fmt(builder.production!.seconds / builder.tarGzipS!, 2)}× |`,
      buildRow('production image again, nothing changed', builder.productionUnchanged!),
      buildRow('snapshot image, first build (production layer from the engine)', builder.snapshotFirst!),
      buildRow('snapshot image after one package in the snapshot layer changed', builder.snapshotRebuild!),
      buildRow('the same, with `--no-delta` (snapshot layer sent whole)', builder.snapshotRebuildWhole!),
      '',
    ]),
    ...imageRows(images),
    '',
    ...(previous ? [`Before (the previous run, ${previous.when}): production image ${fmt(previous.production ?? NaN, 1)} s, snapshot rebuild after one change ${fmt(previous.rebuild ?? NaN, 1)} s.`, ''] : []),
  ].join('\n');
  fs.mkdirSync(o.out, { recursive: true });
  const base = path.join(o.out, o.smoke ? 'smoke' : 'latest');
  fs.writeFileSync(`${base}.md`, md);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\n${md}\nbench: written to ${base}.md and ${base}.json\n`);
}

/** The builder figures of the run before this one, if its results are still there. */
function readPrevious(base: string): { when: string; production?: number; rebuild?: number } | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8')) as { when: string; builder?: { production?: { seconds: number }; snapshotRebuild?: { seconds: number } } };
    return { when: j.when, production: j.builder?.production?.seconds, rebuild: j.builder?.snapshotRebuild?.seconds };
  } catch {
    return undefined;
  }
}

interface Round { registry: WrkResult; warn: WrkResult; nginx: WrkResult }

/**
 * A route's figures over its rounds: each server's median round (by
 * requests/s), and each ratio to nginx as the median of the rounds' own
 * ratios (the two runs of a round are seconds apart, so a round's ratio
 * is the least disturbed figure).
 */
interface Row {
  label: string; bytes: number; registry: WrkResult; warn: WrkResult; nginx: WrkResult;
  ratio: number; warnRatio: number; rounds: Round[]; rssMb: number; logLines: number;
}

function median<T>(xs: T[], key: (x: T) => number): T {
  const sorted = [...xs].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function rowOf(label: string, bytes: number, rounds: Round[], rssMb: number, logLines: number): Row {
  const mid = (k: keyof Round) => median(rounds.map((r) => r[k]), (w) => w.rps);
  const ratioOf = (k: 'registry' | 'warn') => median(rounds.map((r) => r[k].rps / r.nginx.rps), (x) => x);
  return { label, bytes, registry: mid('registry'), warn: mid('warn'), nginx: mid('nginx'), ratio: ratioOf('registry'), warnRatio: ratioOf('warn'), rounds, rssMb, logLines };
}

/** `<name>-<version>` of every zip package in the corpus. */
function corpusZips(corpus: string): Set<string> {
  const out = new Set<string>();
  for (const l of LAYERS) {
    for (const f of fs.readdirSync(path.join(corpus, l))) if (f.endsWith('.zip')) out.add(f.slice(0, -4));
  }
  return out;
}

main().catch((err: Error) => {
  process.stderr.write(`bench: error: ${err.message}\n`);
  process.exitCode = 1;
});
