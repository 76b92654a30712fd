#!/usr/bin/env node
/**
 * A corpus generator for benchmarks: packages shaped like real integrations
 * (policy templates with inputs and vars, 3-8 data streams with fields,
 * ingest pipelines and stream templates, Kibana dashboards and
 * visualizations, SVG icons, PNG screenshots, docs), spread over the
 * production / staging / snapshot layers with some name+version overlaps.
 * Deterministic for a seed.
 *
 *   npm run bench:corpus -- --out bench/corpus --packages 200 --versions 12 [--seed 1]
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export interface CorpusOptions {
  out: string;
  packages: number;
  versions: number;
  layers: string[];
  seed: number;
}

/** mulberry32: small, fast, good enough for shaping test data. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['apache', 'nginx', 'kafka', 'redis', 'mysql', 'postgres', 'aws', 'azure', 'gcp', 'system', 'windows', 'okta', 'zeek', 'suricata', 'cisco', 'fortinet', 'docker', 'kubernetes', 'traefik', 'haproxy', 'iis', 'tomcat', 'jolokia', 'prometheus', 'mongodb', 'elastic', 'github', 'slack', 'zoom', 'crowdstrike'];
const CATEGORIES = ['web', 'security', 'observability', 'datastore', 'cloud', 'aws', 'azure', 'network', 'monitoring', 'message_queue', 'containers', 'os_system'];
const INPUTS = ['logfile', 'httpjson', 'cel', 'tcp', 'udp', 'aws-s3', 'filestream', 'prometheus/metrics'];

function pick<T>(r: () => number, list: T[]): T {
  return list[Math.floor(r() * list.length)];
}

function text(r: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(pick(r, ['collect', 'metrics', 'logs', 'from', 'the', 'service', 'events', 'with', 'Elastic', 'Agent', 'dashboards', 'for', 'visualise', 'errors', 'latency', 'requests', 'hosts']));
  return out.join(' ');
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

/** A tiny valid PNG of the given size class (zlib-compressed noise so it does not shrink away). */
function png(r: () => number, width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let i = 0; i < raw.length; i++) raw[i] = i % (width * 3 + 1) === 0 ? 0 : Math.floor(r() * 256);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 1 })), chunk('IEND', Buffer.alloc(0))]);
}

function svg(r: () => number): string {
  const shapes: string[] = [];
  for (let i = 0; i < 12; i++) shapes.push(`<circle cx="${Math.floor(r() * 64)}" cy="${Math.floor(r() * 64)}" r="${2 + Math.floor(r() * 10)}" fill="#${Math.floor(r() * 0xffffff).toString(16).padStart(6, '0')}"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">${shapes.join('')}</svg>\n`;
}

function dashboard(r: () => number, id: string, panels: number): string {
  const panelsJson = Array.from({ length: panels }, (_, i) => ({
    embeddableConfig: { title: text(r, 4) },
    gridData: { h: 12, i: String(i), w: 24, x: (i % 2) * 24, y: Math.floor(i / 2) * 12 },
    panelIndex: String(i),
    type: 'visualization',
    version: '8.11.0',
  }));
  return JSON.stringify({
    attributes: {
      description: text(r, 20),
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ filter: [], query: { language: 'kuery', query: '' } }) },
      panelsJSON: JSON.stringify(panelsJson),
      timeRestore: false,
      title: `[Logs] ${text(r, 3)}`,
      version: 1,
    },
    id,
    references: panelsJson.map((_, i) => ({ id: `${id}-viz-${i}`, name: `panel_${i}`, type: 'visualization' })),
    type: 'dashboard',
  }, null, 2);
}

interface Written { files: number; bytes: number }

function write(root: string, rel: string, content: string | Buffer, stats: Written): void {
  const abs = path.join(root, rel);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, content);
  stats.files++;
  stats.bytes += typeof content === 'string' ? Buffer.byteLength(content) : content.length;
}

function writePackage(dir: string, name: string, version: string, r: () => number, stats: Written): void {
  const streams = 3 + Math.floor(r() * 6);
  const category = pick(r, CATEGORIES);
  const dsNames = Array.from({ length: streams }, (_, i) => `${pick(r, ['access', 'error', 'audit', 'metrics', 'status', 'events', 'flows', 'alerts'])}${i}`);
  const input = pick(r, INPUTS);
  const manifest = [
    'format_version: 3.0.0',
    `name: ${name}`,
    `title: ${yamlString(`${name.replace(/_/g, ' ')} integration`)}`,
    `version: ${version}`,
    `description: ${yamlString(text(r, 14))}`,
    'type: integration',
    `categories: [${category}${r() < 0.5 ? `, ${pick(r, CATEGORIES)}` : ''}]`,
    'conditions:',
    `  kibana.version: ${yamlString(pick(r, ['^8.10.0 || ^9.0.0', '^8.11.0', '^7.17.0 || ^8.0.0', '^8.13.0']))}`,
    '  elastic.subscription: basic',
    'icons:',
    `  - src: /img/${name}-logo.svg`,
    '    title: logo',
    '    size: 64x64',
    '    type: image/svg+xml',
    'screenshots:',
    '  - src: /img/overview.png',
    '    title: Overview dashboard',
    '    size: 1600x1000',
    '    type: image/png',
    'policy_templates:',
    `  - name: ${name}`,
    `    title: ${yamlString(`${name} logs and metrics`)}`,
    `    description: ${yamlString(text(r, 10))}`,
    '    inputs:',
    `      - type: ${input}`,
    `        title: ${yamlString(`Collect ${name} data`)}`,
    `        description: ${yamlString(text(r, 8))}`,
    '        vars:',
    '          - name: hosts',
    '            type: text',
    '            title: Hosts',
    '            multi: true',
    '            required: true',
    '            show_user: true',
    '            default: ["http://127.0.0.1"]',
    '          - name: period',
    '            type: text',
    '            title: Period',
    '            default: 10s',
    'owner:',
    '  github: elastic/integrations',
    '  type: elastic',
    '',
  ].join('\n');
  write(dir, 'manifest.yml', manifest, stats);
  write(dir, 'docs/README.md', `# ${name}\n\n${Array.from({ length: 40 }, () => text(r, 16)).join('.\n\n')}\n`, stats);
  write(dir, 'changelog.yml', `- version: "${version}"\n  changes:\n    - description: ${yamlString(text(r, 8))}\n      type: enhancement\n      link: https://github.com/elastic/integrations/pull/1\n`, stats);
  write(dir, 'LICENSE.txt', `Elastic License 2.0\n\n${text(r, 300)}\n`, stats);
  write(dir, `img/${name}-logo.svg`, svg(r), stats);
  write(dir, 'img/overview.png', png(r, 360, 240), stats);
  write(dir, 'img/details.png', png(r, 240, 160), stats);
  for (const ds of dsNames) {
    const base = `data_stream/${ds}`;
    write(dir, `${base}/manifest.yml`, [
      `title: ${yamlString(`${name} ${ds}`)}`,
      `type: ${ds.startsWith('metrics') || ds.startsWith('status') ? 'metrics' : 'logs'}`,
      'streams:',
      `  - input: ${input}`,
      `    title: ${yamlString(`${ds} events`)}`,
      `    description: ${yamlString(text(r, 10))}`,
      '    vars:',
      '      - name: paths',
      '        type: text',
      '        title: Paths',
      '        multi: true',
      '        required: true',
      '        show_user: true',
      `        default: ["/var/log/${name}/${ds}.log*"]`,
      '      - name: tags',
      '        type: text',
      '        multi: true',
      `        default: ["forwarded", "${name}-${ds}"]`,
      '',
    ].join('\n'), stats);
    const fields = Array.from({ length: 25 + Math.floor(r() * 40) }, (_, i) => `- name: ${ds}.field_${i}\n  type: ${pick(r, ['keyword', 'long', 'date', 'ip', 'text', 'double'])}\n  description: ${yamlString(text(r, 8))}\n`).join('');
    write(dir, `${base}/fields/fields.yml`, fields, stats);
    write(dir, `${base}/fields/base-fields.yml`, '- name: data_stream.type\n  type: constant_keyword\n- name: data_stream.dataset\n  type: constant_keyword\n- name: data_stream.namespace\n  type: constant_keyword\n- name: "@timestamp"\n  type: date\n', stats);
    write(dir, `${base}/fields/ecs.yml`, Array.from({ length: 20 }, (_, i) => `- external: ecs\n  name: ${pick(r, ['source', 'destination', 'host', 'event', 'user', 'url'])}.${pick(r, ['ip', 'port', 'name', 'domain', 'id'])}${i}\n`).join(''), stats);
    write(dir, `${base}/agent/stream/stream.yml.hbs`, `paths:\n{{#each paths}}\n  - {{this}}\n{{/each}}\ntags:\n{{#each tags}}\n  - {{this}}\n{{/each}}\nprocessors:\n  - add_locale: ~\n`, stats);
    write(dir, `${base}/elasticsearch/ingest_pipeline/default.yml`, `description: Pipeline for ${name} ${ds}\nprocessors:\n${Array.from({ length: 30 }, (_, i) => `  - set:\n      field: ${ds}.derived_${i}\n      value: "{{{${ds}.field_${i}}}}"\n      ignore_empty_value: true\n`).join('')}on_failure:\n  - set:\n      field: error.message\n      value: "{{{ _ingest.on_failure_message }}}"\n`, stats);
  }
  const dashboards = 2 + Math.floor(r() * 4);
  for (let i = 0; i < dashboards; i++) {
    const id = `${name}-dashboard-${i}`;
    write(dir, `kibana/dashboard/${id}.json`, dashboard(r, id, 60 + Math.floor(r() * 120)), stats);
  }
  for (let i = 0; i < 12; i++) {
    const id = `${name}-viz-${i}`;
    write(dir, `kibana/visualization/${id}.json`, JSON.stringify({ attributes: { title: text(r, 4), visState: JSON.stringify({ aggs: Array.from({ length: 8 }, (_, k) => ({ id: String(k), params: { field: `${pick(r, dsNames)}.field_${k}` }, type: 'terms' })), title: text(r, 3), type: 'line' }), description: text(r, 40) }, id, type: 'visualization' }, null, 2), stats);
  }
}

/** Writes the corpus; returns counts. Layers get versions in order: the last versions land in the later layers. */
export function generateCorpus(opts: CorpusOptions): { versions: number; files: number; bytes: number; overlaps: number } {
  const r = rng(opts.seed);
  const stats: Written = { files: 0, bytes: 0 };
  let versions = 0;
  let overlaps = 0;
  fs.mkdirSync(opts.out, { recursive: true });
  for (let p = 0; p < opts.packages; p++) {
    const name = `${pick(r, WORDS)}_${p}`;
    for (let v = 0; v < opts.versions; v++) {
      const version = `${1 + Math.floor(v / 4)}.${v % 4}.0`;
      // most versions in production, the newest in staging and snapshot
      const frac = v / Math.max(1, opts.versions - 1);
      const layerIndex = frac < 0.75 ? 0 : frac < 0.92 ? Math.min(1, opts.layers.length - 1) : opts.layers.length - 1;
      const pr = rng(opts.seed * 100_003 + p * 1009 + v);
      writePackage(path.join(opts.out, opts.layers[layerIndex], name, version), name, version, pr, stats);
      versions++;
      // every 10th package repeats its newest production version in the next layer, with other content
      if (layerIndex === 0 && opts.layers.length > 1 && p % 10 === 0 && v === Math.floor(0.75 * (opts.versions - 1))) {
        writePackage(path.join(opts.out, opts.layers[1], name, version), name, version, rng(pr() * 1e9), stats);
        overlaps++;
      }
    }
  }
  return { versions, overlaps, ...stats };
}

function parseArgs(argv: string[]): CorpusOptions {
  const opts: CorpusOptions = { out: 'bench/corpus', packages: 200, versions: 12, layers: ['production', 'staging', 'snapshot'], seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--out': opts.out = value(); break;
      case '--packages': opts.packages = Number(value()); break;
      case '--versions': opts.versions = Number(value()); break;
      case '--layers': opts.layers = value().split(',').filter(Boolean); break;
      case '--seed': opts.seed = Number(value()); break;
      case '--help': case '-h':
        process.stdout.write('Usage: npm run bench:corpus -- --out <dir> [--packages 200] [--versions 12] [--layers production,staging,snapshot] [--seed 1]\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  for (const [k, v] of [['--packages', opts.packages], ['--versions', opts.versions], ['--seed', opts.seed]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a whole number of at least 1`);
  }
  if (opts.layers.length === 0) throw new Error('--layers needs at least one layer name');
  return opts;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    if (fs.existsSync(opts.out) && fs.readdirSync(opts.out).length > 0) throw new Error(`${opts.out} exists and is not empty; remove it or pick another --out`);
    const t0 = Date.now();
    const res = generateCorpus(opts);
    process.stdout.write(`corpus: ${res.versions} package versions (${opts.packages} packages), ${res.overlaps} overlapping name+version pairs, ${res.files} files, ${(res.bytes / 1e6).toFixed(1)} MB in ${opts.out} (${Date.now() - t0} ms)\n`);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
