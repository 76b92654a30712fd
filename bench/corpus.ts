#!/usr/bin/env node
/**
 * A corpus generator for benchmarks, calibrated on the shape of Elastic's
 * real package storage (the "Small images" issue): how many versions a
 * package has, files and bytes per version, file sizes, the PNG share,
 * manifest sizes, data streams per version, how much each new version
 * repeats of the one before, and how well each kind of file compresses.
 * Packages are spread over the production / staging / snapshot layers (the
 * newest versions in the later layers, some name+version pairs in two
 * layers); about one package in ten is kept as signed zips, whose successive
 * versions share their compressed entries byte for byte. Deterministic for a
 * seed. The measured shape is written next to the corpus (corpus-stats.json)
 * and printed; `--stats DIR` measures any package tree the same way.
 *
 *   npm run bench:corpus -- --out bench/corpus/2400 [--versions 2400] [--seed 1]
 *   npm run bench:corpus -- --stats <package path>...
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ZipWriter } from './zip-writer.js';
import { formatStats, measureTree, type TreeStats } from './corpus-stats.js';

export interface CorpusOptions {
  out: string;
  /** package versions in all, over every layer */
  versions: number;
  layers: string[];
  seed: number;
  /** the share of packages kept as signed zips (default 0.1) */
  zipShare?: number;
}

export interface CorpusResult {
  packages: number;
  versions: number;
  files: number;
  bytes: number;
  /** name+version pairs written in two layers (with different content) */
  overlaps: number;
  zips: number;
  byLayer: Record<string, number>;
}

// ---------------------------------------------------------------------------
// randomness

type Rng = () => number;

/** mulberry32: small, fast, good enough for shaping test data. */
function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedOf(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ Math.floor(p / 4294967296), 0x01000193) >>> 0;
  }
  return h;
}

function pick<T>(r: Rng, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)];
}

function int(r: Rng, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** A standard normal draw (Box-Muller). */
function normal(r: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** A log-normal draw with the given median and the ratio of the 90th percentile to it. */
function logNormal(r: Rng, median: number, p90OverMedian: number): number {
  return median * Math.exp((normal(r) * Math.log(p90OverMedian)) / 1.2816);
}

// ---------------------------------------------------------------------------
// text that reads (and compresses) like the real files

const PROSE = ('the a of to and in for with from this that by on is are be as or can you your it its when which each all one more into their '
  + 'collect collects collecting metrics logs events data integration elastic agent fleet kibana elasticsearch dashboards visualize monitor monitoring '
  + 'service services host hosts server servers cluster node nodes request requests response errors error latency status health usage performance '
  + 'security audit access network traffic flow flows connection connections user users account accounts resource resources instance instances '
  + 'configure configuration enable enabled default value values field fields option options setting settings input inputs stream streams '
  + 'package version documentation supported compatible requires require available see details information about using used use set sets '
  + 'API endpoint endpoints token credentials authentication period interval time timeout retry number maximum minimum list path paths file files').split(' ');

const FIELD_PARTS = ['id', 'name', 'type', 'status', 'code', 'message', 'count', 'bytes', 'duration', 'address', 'port', 'domain', 'path', 'method', 'version', 'region', 'zone', 'level', 'category', 'action', 'outcome', 'reason', 'size', 'total', 'pct', 'avg', 'max', 'min', 'rate', 'state'];
const FIELD_GROUPS = ['request', 'response', 'client', 'server', 'source', 'destination', 'process', 'service', 'connection', 'session', 'cluster', 'node', 'index', 'query', 'cache', 'queue', 'thread', 'memory', 'cpu', 'disk', 'network', 'event', 'rule', 'alert', 'policy', 'device', 'user', 'group', 'file', 'registry'];
const FIELD_TYPES = ['keyword', 'keyword', 'keyword', 'long', 'long', 'date', 'ip', 'text', 'double', 'boolean', 'scaled_float', 'float', 'match_only_text'];
const WORDS = ['apache', 'nginx', 'kafka', 'redis', 'mysql', 'postgres', 'aws', 'azure', 'gcp', 'system', 'windows', 'okta', 'zeek', 'suricata', 'cisco', 'fortinet', 'docker', 'kubernetes', 'traefik', 'haproxy', 'iis', 'tomcat', 'jolokia', 'prometheus', 'mongodb', 'elastic', 'github', 'slack', 'zoom', 'crowdstrike', 'panw', 'sentinel', 'juniper', 'checkpoint', 'o365', 'gitlab', 'jamf', 'snyk', 'tenable', 'qualys'];
const CATEGORIES = ['web', 'security', 'observability', 'datastore', 'cloud', 'aws', 'azure', 'network', 'monitoring', 'message_queue', 'containers', 'os_system', 'productivity', 'threat_intel', 'siem', 'custom'];
const INPUTS = ['logfile', 'filestream', 'httpjson', 'cel', 'tcp', 'udp', 'aws-s3', 'aws/metrics', 'azure-eventhub', 'gcp-pubsub', 'http_endpoint', 'winlog', 'prometheus/metrics', 'jolokia/metrics', 'sql/metrics', 'kafka', 'journald', 'syslog'];
const DS_NAMES = ['access', 'error', 'audit', 'metrics', 'status', 'events', 'flow', 'alert', 'log', 'stats', 'node', 'cluster', 'index', 'query', 'slowlog', 'connection', 'performance', 'threat', 'incident', 'user', 'device', 'policy', 'firewall', 'dns', 'http', 'session', 'activity', 'inventory', 'vulnerability', 'audit_trail'];
const KIBANA_VERSIONS = ['^7.14.0', '^7.16.0', '^7.17.0 || ^8.0.0', '^8.2.0', '^8.7.1', '^8.10.0', '^8.11.0', '^8.13.0', '^8.13.0 || ^9.0.0', '^8.15.0 || ^9.0.0', '^8.17.0 || ^9.0.0', '^9.0.0'];

function sentence(r: Rng, words: number): string {
  const out: string[] = [];
  // words drawn unevenly, the common ones far more often, as in real text (which is why it compresses well)
  for (let i = 0; i < words; i++) out.push(PROSE[Math.floor(r() ** 3 * PROSE.length)]);
  const s = out.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function fieldName(r: Rng): string {
  return `${pick(r, FIELD_GROUPS)}.${pick(r, FIELD_PARTS)}`;
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for megabytes of PNG. */
function noise(seed: number, length: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, 0, length);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * A valid PNG of about `bytes` bytes whose pixels are noise stored without
 * compression: real screenshots are compressed already and barely shrink
 * further, and neither does this.
 */
function png(seed: number, bytes: number): Buffer {
  const width = bytes > 200_000 ? 1600 : bytes > 20_000 ? 640 : 64;
  const row = width * 3 + 1;
  const height = Math.max(1, Math.round(bytes / row));
  const raw = noise(seed, row * height);
  for (let y = 0; y < height; y++) raw[y * row] = 0;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(raw, { level: 0 })), pngChunk('IEND', Buffer.alloc(0))]);
}

function svg(r: Rng, shapes: number): string {
  const out: string[] = [];
  for (let i = 0; i < shapes; i++) {
    const pts = Array.from({ length: 6 }, () => `${(r() * 64).toFixed(3)},${(r() * 64).toFixed(3)}`).join(' ');
    out.push(`  <path d="M${pts} Z" fill="#${Math.floor(r() * 0xffffff).toString(16).padStart(6, '0')}" fill-rule="evenodd"/>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n${out.join('\n')}\n</svg>\n`;
}

// ---------------------------------------------------------------------------
// a package: what stays from version to version, and what each file is

interface DataStreamSpec {
  dir: string;
  type: 'logs' | 'metrics';
  inputs: string[];
  fieldCount: number;
  pipelineSteps: number;
  /** index in the package, for file seeds */
  n: number;
}

interface PackageProfile {
  index: number;
  name: string;
  versions: number;
  kind: 'integration' | 'input';
  zip: boolean;
  category: string[];
  dataStreams: DataStreamSpec[];
  /** data streams it grows to over its versions */
  targetDataStreams: number;
  screenshots: number[];
  dashboards: number;
  visualizations: number;
  searches: number;
  readmeSections: number;
  /** a manifest style: dotted condition keys, quoted versions, comments */
  style: { dotted: boolean; quoted: boolean; comments: boolean; license: boolean };
}

/** The text of the Elastic License, the same file in most packages. */
const LICENSE = Buffer.from(`Elastic License 2.0\n\nURL: https://www.elastic.co/licensing/elastic-license\n\n## Acceptance\n\n${Array.from({ length: 14 }, (_, i) => sentence(rng(9000 + i), 40)).join('.\n\n')}.\n`);
const BASE_FIELDS = Buffer.from('- name: data_stream.type\n  type: constant_keyword\n  description: Data stream type.\n- name: data_stream.dataset\n  type: constant_keyword\n  description: Data stream dataset.\n- name: data_stream.namespace\n  type: constant_keyword\n  description: Data stream namespace.\n- name: "@timestamp"\n  type: date\n  description: Event timestamp.\n');
const AGENT_FIELDS = Buffer.from(`- name: cloud\n  title: Cloud\n  group: 2\n  description: Fields related to the cloud or infrastructure the events are coming from.\n  footnote: 'Examples: If Metricbeat is running on an EC2 host and fetches data from its host, the cloud info contains the data about this machine.'\n  type: group\n  fields:\n${['account.id', 'availability_zone', 'instance.id', 'instance.name', 'machine.type', 'provider', 'region', 'project.id', 'image.id'].map((f) => `    - name: ${f}\n      level: extended\n      type: keyword\n      ignore_above: 1024\n      description: ${sentence(rng(f.length * 31), 14)}.\n`).join('')}- name: host\n  title: Host\n  group: 2\n  type: group\n  fields:\n${['architecture', 'domain', 'hostname', 'id', 'ip', 'mac', 'name', 'os.family', 'os.kernel', 'os.name', 'os.platform', 'os.version', 'type', 'containerized', 'os.build', 'os.codename'].map((f) => `    - name: ${f}\n      level: core\n      type: keyword\n      ignore_above: 1024\n      description: ${sentence(rng(f.length * 37), 16)}.\n`).join('')}`);

function makeProfile(seed: number, index: number, versions: number, zipShare: number): PackageProfile {
  const r = rng(seedOf(seed, index, 1));
  const kind = index > 0 && r() < 0.08 ? 'input' : 'integration';
  // data streams per version: p50 1, p90 11, max 43 (real storage)
  // the first package is the largest of the storage (aws: 43 data streams)
  const largest = index === 0 && versions >= 40;
  const dsCount = largest ? 43 : kind === 'input' ? 0 : Math.max(1, Math.min(43, Math.round(logNormal(r, 1.4, 7.5))));
  const name = `${pick(r, WORDS)}_${index}`;
  const profile: PackageProfile = {
    index,
    name,
    versions,
    kind,
    zip: Math.floor((index + 7) * zipShare) > Math.floor((index + 6) * zipShare),
    category: [pick(r, CATEGORIES), ...(r() < 0.5 ? [pick(r, CATEGORIES)] : [])],
    dataStreams: [],
    targetDataStreams: dsCount,
    screenshots: [],
    dashboards: kind === 'input' ? 0 : Math.max(0, Math.round(logNormal(r, 2 + dsCount * 0.3, 2))),
    visualizations: kind === 'input' ? 0 : Math.max(0, Math.round(logNormal(r, 1 + dsCount * 1.2, 2))),
    searches: kind === 'input' ? 0 : int(r, 0, Math.ceil(dsCount / 3)),
    readmeSections: int(r, 2, 6),
    style: { dotted: r() < 0.3, quoted: r() < 0.6, comments: r() < 0.2, license: r() < 0.6 },
  };
  // most packages start with most of their data streams; some gain more over time
  const start = versions > 3 && r() < 0.4 ? Math.max(1, Math.round(dsCount * 0.6)) : dsCount;
  for (let i = 0; i < start; i++) addDataStream(profile, r);
  const shots = largest ? 16 : kind === 'input' ? int(r, 0, 1) : Math.min(12, Math.round(logNormal(r, 0.7, 2.4) + dsCount / 15));
  for (let i = 0; i < shots; i++) profile.screenshots.push(seedOf(seed, index, 100 + i));
  return profile;
}

function addDataStream(p: PackageProfile, r: Rng): void {
  const n = p.dataStreams.length;
  const base = pick(r, DS_NAMES);
  const dir = p.dataStreams.some((d) => d.dir === base) ? `${base}_${n}` : base;
  const type = /metrics|stats|status|node|cluster|performance|inventory/.test(base) ? 'metrics' : 'logs';
  const inputs = [pick(r, INPUTS), ...(r() < 0.3 ? [pick(r, INPUTS)] : [])].filter((v, i, a) => a.indexOf(v) === i);
  p.dataStreams.push({ dir, type, inputs, fieldCount: Math.round(logNormal(r, 14, 4)) + 2, pipelineSteps: type === 'logs' ? Math.round(logNormal(r, 10, 3)) : int(r, 0, 4), n });
}

// ---------------------------------------------------------------------------
// file contents

function packageManifest(p: PackageProfile, version: string, kibana: string, r: Rng): string {
  const v = (s: string) => (p.style.quoted ? q(s) : s);
  const title = `${p.name.replace(/_\d+$/, '').replace(/^./, (c) => c.toUpperCase())} ${p.index}`;
  const lines: string[] = [];
  if (p.style.comments) lines.push('# Generated by the package build; edit the source in packages/ instead.');
  lines.push(`format_version: ${v(pick(r, ['2.7.0', '3.0.0', '3.0.2', '3.1.3', '3.3.0']))}`, `name: ${p.name}`, `title: ${q(title)}`, `version: ${v(version)}`);
  // a few real manifests wrap a plain description over two lines (outside the plain subset of server/packages/plain-yaml.ts)
  lines.push(r() < 0.05 ? `description: ${sentence(r, int(r, 6, 10))}\n  ${sentence(r, int(r, 4, 8)).toLowerCase()}.` : `description: ${sentence(r, int(r, 6, 16))}.`);
  lines.push(`type: ${p.kind}`);
  if (r() < 0.15) lines.push(`source:\n  license: ${q('Elastic-2.0')}`);
  lines.push('categories:', ...p.category.map((c) => `  - ${c}`));
  if (p.style.dotted) {
    lines.push('conditions:', `  kibana.version: ${q(kibana)}`, '  elastic.subscription: basic');
  } else {
    lines.push('conditions:', '  kibana:', `    version: ${q(kibana)}`, '  elastic:', `    subscription: ${pick(r, ['basic', 'basic', 'basic', 'gold', 'platinum'])}`);
  }
  if (p.screenshots.length > 0) {
    lines.push('screenshots:');
    p.screenshots.forEach((_, i) => lines.push(`  - src: /img/${p.name}-screenshot-${i}.png`, `    title: ${sentence(r, 3)}`, '    size: 1600x1000', '    type: image/png'));
  }
  lines.push('icons:', `  - src: /img/logo_${p.name}.svg`, `    title: ${title} logo`, '    size: 32x32', '    type: image/svg+xml');
  if (p.kind === 'input') {
    const input = pick(r, INPUTS);
    lines.push('policy_templates:', `  - name: ${p.name}`, `    type: ${p.dataStreams.length === 0 ? 'logs' : 'metrics'}`, `    title: ${q(`${title} input`)}`, `    description: ${sentence(r, 8)}`, `    input: ${input}`, '    template_path: input.yml.hbs', '    vars:');
    lines.push(...variables(r, 2 + int(r, 0, 3), '      '));
  } else {
    // one template for small packages; large ones (aws, azure) have one per service
    const groups = p.dataStreams.length <= 4 ? 1 : Math.ceil(p.dataStreams.length / 4);
    const inputsOf = [...new Set(p.dataStreams.flatMap((d) => d.inputs))];
    if (r() < 0.15 || groups > 1) {
      lines.push('vars:', ...variables(r, int(r, 1, groups > 1 ? 4 : 2), '  '));
    }
    lines.push('policy_templates:');
    for (let g = 0; g < groups; g++) {
      const ds = p.dataStreams.slice(g * 4, g * 4 + 4);
      lines.push(`  - name: ${groups > 1 ? `${p.name}_${g}` : p.name}`, `    title: ${q(`${title} ${groups > 1 ? ds.map((d) => d.dir).join(' and ') : 'logs and metrics'}`)}`, `    description: ${sentence(r, int(r, 5, 10))}`);
      if (groups > 1) lines.push('    data_streams:', ...ds.map((d) => `      - ${d.dir}`), ...(r() < 0.5 ? ['    categories:', `      - ${pick(r, CATEGORIES)}`] : []));
      lines.push('    inputs:');
      const own = groups > 1 ? [...new Set(ds.flatMap((d) => d.inputs))] : inputsOf;
      for (const input of own) {
        lines.push(`      - type: ${input}`, `        title: ${q(`Collect ${sentence(r, 3).toLowerCase()}`)}`, `        description: ${sentence(r, int(r, 4, 9))}`);
        if (r() < 0.1) lines.push('        vars:', ...variables(r, int(r, 1, 3), '          '));
      }
      if (groups > 1 && r() < 0.3) lines.push('    icons:', `      - src: /img/${p.name}-${g}.svg`, `        title: ${q(ds[0]?.dir ?? 'logo')}`, '        size: 32x32', '        type: image/svg+xml');
    }
  }
  lines.push('owner:', `  github: elastic/${pick(r, ['integrations', 'security-service-integrations', 'obs-infraobs-integrations', 'obs-ds-hosted-services', 'sec-windows-platform'])}`, `  type: ${pick(r, ['elastic', 'elastic', 'elastic', 'partner', 'community'])}`);
  return `${lines.join('\n')}\n`;
}

/** Policy and stream variables in the styles real manifests use (block scalars, lists, booleans, quoted defaults). */
function variables(r: Rng, count: number, pad: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const kind = pick(r, ['text', 'text', 'bool', 'password', 'yaml', 'integer', 'select', 'url']);
    const name = kind === 'yaml' ? pick(r, ['processors', 'ssl', 'tags_yaml', 'http_client_timeout_yaml']) : `${pick(r, FIELD_PARTS)}_${pick(r, FIELD_PARTS)}`;
    out.push(`${pad}- name: ${name}`, `${pad}  type: ${kind}`, `${pad}  title: ${sentence(r, int(r, 1, 4))}`);
    if (kind === 'yaml') {
      out.push(`${pad}  description: >`, `${pad}    ${sentence(r, int(r, 14, 30))}. See [Processors](https://www.elastic.co/guide/en/fleet/current/elastic-agent-processor-configuration.html) for details.`);
      out.push(`${pad}  multi: false`, `${pad}  required: false`, `${pad}  show_user: false`);
      if (r() < 0.4) out.push(`${pad}  default: |`, `${pad}    #certificate_authorities:`, `${pad}    #  - |`, `${pad}    #    -----BEGIN CERTIFICATE-----`, `${pad}    #    ${noise(int(r, 1, 1e9), 48).toString('base64')}`, `${pad}    #    -----END CERTIFICATE-----`);
      continue;
    }
    if (r() < 0.6) out.push(`${pad}  description: ${sentence(r, int(r, 5, 18))}.`);
    const multi = kind === 'text' && r() < 0.4;
    out.push(`${pad}  multi: ${multi}`, `${pad}  required: ${r() < 0.5}`, `${pad}  show_user: ${r() < 0.6}`);
    if (kind === 'password') out.push(`${pad}  secret: true`);
    if (kind === 'select') out.push(`${pad}  options:`, `${pad}    - value: ${pick(r, FIELD_PARTS)}`, `${pad}      text: ${sentence(r, 2)}`, `${pad}    - value: ${pick(r, FIELD_PARTS)}`, `${pad}      text: ${sentence(r, 2)}`);
    if (kind === 'bool') out.push(`${pad}  default: ${r() < 0.5}`);
    else if (kind === 'integer') out.push(`${pad}  default: ${int(r, 1, 10000)}`);
    else if (kind === 'url') out.push(`${pad}  default: https://${pick(r, WORDS)}.example.com:${int(r, 80, 9999)}`);
    else if (multi) out.push(`${pad}  default:`, ...Array.from({ length: int(r, 1, 3) }, () => `${pad}    - ${q(`/var/log/${pick(r, WORDS)}/${pick(r, FIELD_PARTS)}.log*`)}`));
    else if (kind === 'text' && r() < 0.5) out.push(`${pad}  default: ${pick(r, ['10s', '1m', '5m', '"30s"', 'localhost:9200', q(pick(r, FIELD_PARTS))])}`);
  }
  return out;
}

function dataStreamManifest(p: PackageProfile, ds: DataStreamSpec, r: Rng): string {
  const lines: string[] = [];
  if (p.style.comments && r() < 0.5) lines.push('# The streams of this data stream, one per input.');
  lines.push(`title: ${q(`${p.name} ${ds.dir.replace(/_/g, ' ')}`)}`, `type: ${ds.type}`);
  if (r() < 0.15) lines.push(`dataset: ${p.name}.${ds.dir}`);
  if (r() < 0.1) lines.push('ilm_policy: logs-default');
  if (r() < 0.2) lines.push('release: beta');
  lines.push('streams:');
  for (const input of ds.inputs) {
    lines.push(`  - input: ${input}`);
    if (r() < 0.5) lines.push(`    template_path: ${input.replace(/\W/g, '_')}.yml.hbs`);
    lines.push(`    title: ${q(`${sentence(r, 3)}`)}`, r() < 0.06 ? `    description: ${sentence(r, int(r, 4, 8))}\n      ${sentence(r, int(r, 3, 6)).toLowerCase()}` : `    description: ${sentence(r, int(r, 4, 10))}`);
    if (r() < 0.03) lines.push('    processors: {}');
    if (r() < 0.1) lines.push('    enabled: false');
    lines.push('    vars:');
    if (ds.type === 'logs') {
      lines.push('      - name: paths', '        type: text', '        title: Paths', '        multi: true', '        required: true', '        show_user: true', '        default:', `          - /var/log/${p.name}/${ds.dir}.log*`);
      lines.push('      - name: tags', '        type: text', '        title: Tags', '        multi: true', '        required: true', '        show_user: false', '        default:', `          - ${p.name}-${ds.dir}`, ...(r() < 0.5 ? ['          - forwarded'] : []));
      lines.push('      - name: preserve_original_event', '        required: true', '        show_user: true', '        title: Preserve original event', '        description: Preserves a raw copy of the original event, added to the field `event.original`.', '        type: bool', '        multi: false', '        default: false');
    } else {
      lines.push('      - name: period', '        type: text', '        title: Period', '        multi: false', '        required: true', '        show_user: true', `        default: ${pick(r, ['10s', '30s', '1m', '5m'])}`);
    }
    lines.push(...variables(r, int(r, 0, 3), '      '));
  }
  if (r() < 0.25) {
    lines.push('elasticsearch:', '  index_template:', '    mappings:', '      dynamic: false');
    if (r() < 0.5) lines.push('  source_mode: synthetic');
  }
  return `${lines.join('\n')}\n`;
}

function fieldsFile(r: Rng, prefix: string, count: number): string {
  const out: string[] = [];
  const groups = Math.max(1, Math.round(count / 6));
  for (let g = 0; g < groups; g++) {
    out.push(`- name: ${prefix}.${pick(r, FIELD_GROUPS)}${g}`, '  type: group', '  fields:');
    for (let i = 0; i < Math.ceil(count / groups); i++) {
      out.push(`    - name: ${pick(r, FIELD_PARTS)}_${i}`, `      type: ${pick(r, FIELD_TYPES)}`, `      description: >`, `        ${sentence(r, int(r, 3, 14))}.`);
      if (r() < 0.2) out.push(`      metric_type: ${pick(r, ['gauge', 'counter'])}`);
      if (r() < 0.15) out.push(`      unit: ${pick(r, ['byte', 'ms', 'percent'])}`);
    }
  }
  return `${out.join('\n')}\n`;
}

function ecsFields(r: Rng, count: number): string {
  return Array.from({ length: count }, () => `- external: ecs\n  name: ${pick(r, ['source', 'destination', 'host', 'event', 'user', 'url', 'http', 'network', 'observer', 'related', 'tls', 'cloud', 'file', 'process'])}.${pick(r, FIELD_PARTS)}\n`).join('');
}

function streamTemplate(r: Rng, input: string): string {
  const lines: string[] = [];
  if (input === 'logfile' || input === 'filestream') {
    lines.push('paths:', '{{#each paths as |path i|}}', '  - {{path}}', '{{/each}}', 'exclude_files: [".gz$"]');
  } else if (input === 'httpjson' || input === 'cel') {
    lines.push('config_version: 2', 'interval: {{interval}}', 'request.method: GET', 'request.url: {{url}}/api/v1/events', '{{#if proxy_url}}', 'request.proxy_url: {{proxy_url}}', '{{/if}}', 'request.transforms:', '  - set:', '      target: header.Authorization', '      value: "Bearer {{api_token}}"', 'response.split:', '  target: body.items', 'cursor:', '  last_timestamp:', '    value: "[[.last_event.timestamp]]"');
  } else {
    lines.push('metricsets: ["' + pick(r, FIELD_GROUPS) + '"]', 'hosts:', '{{#each hosts}}', '  - {{this}}', '{{/each}}', 'period: {{period}}');
  }
  lines.push('tags:', '{{#if preserve_original_event}}', '  - preserve_original_event', '{{/if}}', '{{#each tags as |tag|}}', '  - {{tag}}', '{{/each}}', '{{#contains "forwarded" tags}}', 'publisher_pipeline.disable_host: true', '{{/contains}}', '{{#if processors}}', '{{processors}}', '{{/if}}');
  for (let i = 0; i < int(r, 0, 6); i++) lines.push(`{{#if ${pick(r, FIELD_PARTS)}_${i}}}`, `${pick(r, FIELD_PARTS)}.${pick(r, FIELD_PARTS)}: {{${pick(r, FIELD_PARTS)}_${i}}}`, '{{/if}}');
  return `${lines.join('\n')}\n`;
}

function pipeline(r: Rng, prefix: string, steps: number): string {
  const lines = ['---', `description: Pipeline for parsing ${prefix} logs`, 'processors:', '  - set:', '      field: ecs.version', "      value: '8.11.0'", '  - rename:', '      field: message', '      target_field: event.original', '      ignore_missing: true'];
  for (let i = 0; i < steps; i++) {
    const f = `${prefix}.${pick(r, FIELD_GROUPS)}.${pick(r, FIELD_PARTS)}`;
    switch (int(r, 0, 4)) {
      case 0: lines.push('  - grok:', '      field: event.original', '      patterns:', `        - '%{IPORHOST:source.address} %{DATA:${f}} \\[%{HTTPDATE:${prefix}.time}\\] "%{WORD:http.request.method} %{DATA:url.original}"'`, '      ignore_missing: true'); break;
      case 1: lines.push('  - date:', `      field: ${f}`, '      target_field: "@timestamp"', '      formats:', "        - dd/MMM/yyyy:HH:mm:ss Z", '        - ISO8601', `      if: ctx.${f.replace(/\./g, '?.')} != null`); break;
      case 2: lines.push('  - convert:', `      field: ${f}`, `      type: ${pick(r, ['long', 'ip', 'double', 'boolean'])}`, '      ignore_missing: true', '      on_failure:', '        - remove:', `            field: ${f}`); break;
      case 3: lines.push('  - script:', '      lang: painless', `      tag: ${pick(r, FIELD_PARTS)}_${i}`, '      source: >-', `        if (ctx.${f.replace(/\./g, '?.')} != null) { ctx.${f} = ctx.${f}.toLowerCase(); }`); break;
      default: lines.push('  - set:', `      field: ${f}`, `      copy_from: ${prefix}.${pick(r, FIELD_PARTS)}`, '      ignore_empty_value: true'); break;
    }
  }
  lines.push('  - remove:', '      field:', '        - _tmp', `        - ${prefix}.raw`, '      ignore_missing: true', 'on_failure:', '  - set:', '      field: error.message', "      value: '{{{ _ingest.on_failure_message }}}'", '  - append:', '      field: event.kind', '      value: pipeline_error');
  return `${lines.join('\n')}\n`;
}

function sampleEvent(r: Rng, prefix: string): string {
  const ev: Record<string, unknown> = {
    '@timestamp': new Date(Date.UTC(2024, 0, 1) + Math.floor(r() * 3e10)).toISOString(),
    agent: { ephemeral_id: noise(int(r, 1, 1e9), 16).toString('hex'), id: noise(int(r, 1, 1e9), 16).toString('hex'), name: 'docker-fleet-agent', type: 'filebeat', version: '8.11.0' },
    data_stream: { dataset: prefix, namespace: 'ep', type: 'logs' },
    ecs: { version: '8.11.0' },
    event: { agent_id_status: 'verified', category: [pick(r, ['web', 'network', 'authentication'])], dataset: prefix, ingested: '2024-01-01T00:00:00Z', kind: 'event', outcome: 'success' },
    host: { architecture: 'x86_64', hostname: 'docker-fleet-agent', name: 'docker-fleet-agent', os: { family: 'ubuntu', kernel: '5.15.0', name: 'Ubuntu', platform: 'ubuntu', type: 'linux', version: '20.04.6 LTS (Focal Fossa)' } },
  };
  const own: Record<string, unknown> = {};
  for (let i = 0; i < int(r, 3, 14); i++) own[`${pick(r, FIELD_GROUPS)}_${i}`] = r() < 0.5 ? int(r, 0, 1e6) : sentence(r, 2).toLowerCase();
  ev[prefix.split('.').pop()!] = own;
  return `${JSON.stringify(ev, null, 4)}\n`;
}

/** A Lens layer: a date histogram and a few metric and terms columns, with their ids. */
function lensLayer(r: Rng): Record<string, unknown> {
  const columns: Record<string, unknown> = {};
  const ids: string[] = [];
  const n = int(r, 2, 9);
  for (let k = 0; k < n; k++) {
    const id = `${noise(int(r, 1, 1e9), 4).toString('hex')}-${noise(int(r, 1, 1e9), 2).toString('hex')}-4${noise(int(r, 1, 1e9), 2).toString('hex').slice(1)}`;
    ids.push(id);
    const field = fieldName(r);
    columns[id] = k === 0
      ? { customLabel: false, dataType: 'date', isBucketed: true, label: '@timestamp', operationType: 'date_histogram', params: { dropPartials: false, includeEmptyRows: true, interval: 'auto' }, scale: 'interval', sourceField: '@timestamp' }
      : k % 2 === 1
        ? { customLabel: r() < 0.5, dataType: 'number', filter: { language: 'kuery', query: r() < 0.5 ? '' : `${field} : *` }, isBucketed: false, label: sentence(r, int(r, 1, 4)), operationType: pick(r, ['count', 'sum', 'average', 'max', 'unique_count']), params: { emptyAsNull: true, format: { id: 'number', params: { decimals: 0 } } }, scale: 'ratio', sourceField: field }
        : { dataType: 'string', isBucketed: true, label: `Top 10 values of ${field}`, operationType: 'terms', params: { exclude: [], excludeIsRegex: false, include: [], includeIsRegex: false, missingBucket: false, orderBy: { columnId: ids[1] ?? id, type: 'column' }, orderDirection: 'desc', otherBucket: true, parentFormat: { id: 'terms' }, size: 10 }, scale: 'ordinal', sourceField: field };
  }
  return { columnOrder: ids, columns, incompleteColumns: {}, indexPatternId: 'logs-*' };
}

/** A saved object as Kibana exports it: JSON whose attributes hold more JSON in strings. */
function dashboard(r: Rng, id: string, panels: number, byValue: boolean): string {
  const panelsJson = Array.from({ length: panels }, (_, i) => {
    const base: Record<string, unknown> = { gridData: { h: int(r, 6, 16), i: `${id}-${i}`, w: pick(r, [12, 16, 24, 48]), x: (i % 2) * 24, y: Math.floor(i / 2) * 12 }, panelIndex: `${id}-${i}`, type: byValue ? 'lens' : 'visualization', version: '8.11.0' };
    base.embeddableConfig = byValue ? {
      attributes: {
        references: [{ id: 'logs-*', name: 'indexpattern-datasource-layer-' + i, type: 'index-pattern' }],
        state: {
          datasourceStates: { formBased: { layers: { [`layer${i}`]: lensLayer(r) } } },
          filters: [],
          query: { language: 'kuery', query: r() < 0.5 ? '' : `data_stream.dataset : "${id.split('-')[0]}"` },
          visualization: { axisTitlesVisibilitySettings: { x: true, yLeft: true, yRight: true }, fittingFunction: 'None', gridlinesVisibilitySettings: { x: true, yLeft: true, yRight: true }, layers: [{ accessors: ['b'], layerId: `layer${i}`, layerType: 'data', position: 'top', seriesType: pick(r, ['bar_stacked', 'line', 'area']), showGridlines: false, splitAccessor: 'c', xAccessor: 'a' }], legend: { isVisible: true, position: 'right' }, preferredSeriesType: 'bar_stacked', tickLabelsVisibilitySettings: { x: true, yLeft: true, yRight: true }, valueLabels: 'hide' },
        },
        title: '',
        visualizationType: pick(r, ['lnsXY', 'lnsDatatable', 'lnsMetric', 'lnsPie']),
      },
      enhancements: {},
      hidePanelTitles: false,
    } : { enhancements: {} };
    if (r() < 0.7) base.title = sentence(r, int(r, 2, 5));
    return base;
  });
  return `${JSON.stringify({
    attributes: {
      description: sentence(r, int(r, 6, 20)),
      hits: 0,
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ filter: [], query: { language: 'kuery', query: '' } }) },
      optionsJSON: JSON.stringify({ hidePanelTitles: false, syncColors: false, useMargins: true }),
      panelsJSON: JSON.stringify(panelsJson),
      timeRestore: false,
      title: `[Logs ${id.split('-')[0]}] ${sentence(r, 3)}`,
      version: 1,
    },
    coreMigrationVersion: '8.8.0',
    created_at: '2024-01-01T00:00:00.000Z',
    id,
    managed: false,
    references: panelsJson.map((_, i) => ({ id: byValue ? 'logs-*' : `${id}-viz-${i}`, name: `${id}-${i}:panel_${i}`, type: byValue ? 'index-pattern' : 'visualization' })),
    type: 'dashboard',
    typeMigrationVersion: '8.9.0',
  }, null, 4)}\n`;
}

function visualization(r: Rng, id: string): string {
  const aggs = Array.from({ length: int(r, 2, 8) }, (_, k) => ({ enabled: true, id: String(k + 1), params: { field: fieldName(r), order: 'desc', orderBy: '1', size: int(r, 5, 20) }, schema: k === 0 ? 'metric' : 'segment', type: k === 0 ? 'count' : 'terms' }));
  return `${JSON.stringify({
    attributes: {
      description: r() < 0.5 ? '' : sentence(r, 10),
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ filter: [], indexRefName: 'kibanaSavedObjectMeta.searchSourceJSON.index', query: { language: 'kuery', query: '' } }) },
      title: sentence(r, int(r, 2, 6)),
      uiStateJSON: '{}',
      version: 1,
      visState: JSON.stringify({ aggs, params: { addLegend: true, addTooltip: true, isDonut: r() < 0.5, legendPosition: 'right', type: pick(r, ['pie', 'line', 'histogram', 'table']) }, title: sentence(r, 3), type: pick(r, ['pie', 'line', 'histogram', 'table']) }),
    },
    coreMigrationVersion: '8.8.0',
    id,
    references: [{ id: 'logs-*', name: 'kibanaSavedObjectMeta.searchSourceJSON.index', type: 'index-pattern' }],
    type: 'visualization',
  }, null, 4)}\n`;
}

function search(r: Rng, id: string, prefix: string): string {
  return `${JSON.stringify({
    attributes: {
      columns: Array.from({ length: int(r, 2, 8) }, () => fieldName(r)),
      description: '',
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ filter: [{ meta: { key: 'data_stream.dataset', negate: false, params: { query: prefix }, type: 'phrase' }, query: { match_phrase: { 'data_stream.dataset': prefix } } }], highlightAll: true, query: { language: 'kuery', query: '' } }) },
      sort: [['@timestamp', 'desc']],
      title: sentence(r, 3),
    },
    id,
    references: [{ id: 'logs-*', name: 'kibanaSavedObjectMeta.searchSourceJSON.index', type: 'index-pattern' }],
    type: 'search',
  }, null, 4)}\n`;
}

function readme(p: PackageProfile, r: Rng): string {
  const parts = [`# ${p.name}\n`, `${sentence(r, 40)}.\n`, '## Compatibility\n', `${sentence(r, 25)}.\n`, '## Setup\n', `${sentence(r, 60)}.\n`];
  for (let s = 0; s < p.readmeSections; s++) parts.push(`### ${sentence(r, 3)}\n`, ...Array.from({ length: int(r, 1, 5) }, () => `${sentence(r, int(r, 20, 80))}.\n`), ...(r() < 0.5 ? ['```yaml', ...Array.from({ length: int(r, 3, 12) }, () => `${fieldName(r)}: ${pick(r, FIELD_PARTS)}`), '```\n'] : []));
  for (const ds of p.dataStreams) {
    parts.push(`### ${ds.dir}\n`, `The \`${ds.dir}\` data stream collects ${sentence(r, 12).toLowerCase()}.\n`);
    if (r() < 0.6) parts.push('An example event for `' + ds.dir + '` looks as following:\n', '```json', sampleEvent(r, `${p.name}.${ds.dir}`), '```\n');
    parts.push('**Exported fields**\n', '| Field | Description | Type |', '|---|---|---|');
    for (let i = 0; i < ds.fieldCount; i++) parts.push(`| ${p.name}.${ds.dir}.${pick(r, FIELD_GROUPS)}.${pick(r, FIELD_PARTS)} | ${sentence(r, int(r, 3, 12))}. | ${pick(r, FIELD_TYPES)} |`);
    parts.push('| @timestamp | Event timestamp. | date |', '| data_stream.dataset | Data stream dataset. | constant_keyword |', '| data_stream.namespace | Data stream namespace. | constant_keyword |', '| data_stream.type | Data stream type. | constant_keyword |', '');
  }
  return `${parts.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// versions: each one repeats most files of the one before

/** Screenshots: many small ones, and large ones (a full-page dashboard) that hold most of the PNG bytes. */
function screenshotSize(seed: number): number {
  const r = rng(seed);
  const large = r() < 0.19;
  return Math.min(3_200_000, Math.max(12_000, Math.round(large ? logNormal(r, 560_000, 2.2) : logNormal(r, 45_000, 3))));
}

/** How a file is made; `change` is the chance that a new version has new content for it. */
interface FileSpec { path: string; change: number; make: (r: Rng) => string | Buffer }

function fileSpecs(p: PackageProfile, seed: number): FileSpec[] {
  const specs: FileSpec[] = [
    { path: 'docs/README.md', change: 0.5, make: (r) => readme(p, r) },
    { path: `img/logo_${p.name}.svg`, change: 0.01, make: (r) => svg(r, Math.round(logNormal(r, 8, 4)) + 1) },
  ];
  if (p.style.license) specs.push({ path: 'LICENSE.txt', change: 0, make: () => LICENSE });
  p.screenshots.forEach((s, i) => specs.push({ path: `img/${p.name}-screenshot-${i}.png`, change: 0.02, make: (r) => png(seedOf(s, Math.floor(r() * 1e9)), screenshotSize(s)) }));
  for (const ds of p.dataStreams) {
    const base = `data_stream/${ds.dir}`;
    const prefix = `${p.name}.${ds.dir}`;
    specs.push(
      { path: `${base}/manifest.yml`, change: 0.12, make: (r) => dataStreamManifest(p, ds, r) },
      { path: `${base}/fields/base-fields.yml`, change: 0, make: () => BASE_FIELDS },
      { path: `${base}/fields/fields.yml`, change: 0.2, make: (r) => fieldsFile(r, prefix, ds.fieldCount) },
      { path: `${base}/fields/ecs.yml`, change: 0.1, make: (r) => ecsFields(r, int(r, 8, 60)) },
    );
    if (ds.type === 'logs' || ds.n % 3 === 0) specs.push({ path: `${base}/fields/agent.yml`, change: 0, make: () => AGENT_FIELDS });
    if (ds.n % 2 === 1) specs.push({ path: `${base}/fields/package-fields.yml`, change: 0.1, make: (r) => fieldsFile(r, p.name, int(r, 2, 12)) });
    if (ds.type === 'metrics') specs.push({ path: `${base}/lifecycle.yml`, change: 0, make: () => 'data_retention: "30d"\n' });
    for (const input of ds.inputs) specs.push({ path: `${base}/agent/stream/${input.replace(/\W/g, '_')}.yml.hbs`, change: 0.08, make: (r) => streamTemplate(r, input) });
    if (ds.pipelineSteps > 0) {
      specs.push({ path: `${base}/elasticsearch/ingest_pipeline/default.yml`, change: 0.15, make: (r) => pipeline(r, prefix, ds.pipelineSteps) });
      if (ds.pipelineSteps > 8) specs.push({ path: `${base}/elasticsearch/ingest_pipeline/${pick(rng(seedOf(seed, ds.n)), FIELD_GROUPS)}.yml`, change: 0.1, make: (r) => pipeline(r, prefix, Math.round(ds.pipelineSteps / 2)) });
    }
    if (ds.n % 2 === 0 || ds.type === 'logs') specs.push({ path: `${base}/sample_event.json`, change: 0.1, make: (r) => sampleEvent(r, prefix) });
  }
  const dsOf = (i: number) => p.dataStreams[i % Math.max(1, p.dataStreams.length)]?.dir ?? 'main';
  for (let i = 0; i < p.dashboards; i++) {
    const id = `${p.name}-${noise(seedOf(seed, p.index, 500 + i), 8).toString('hex')}`;
    const panels = Math.max(2, Math.round(logNormal(rng(seedOf(seed, p.index, 600 + i)), 26, 2.5)));
    const byValue = i % 2 === 0;
    specs.push({ path: `kibana/dashboard/${id}.json`, change: 0.25, make: (r) => dashboard(r, `${p.name}-${dsOf(i)}-${i}`, panels, byValue) });
  }
  for (let i = 0; i < p.visualizations; i++) specs.push({ path: `kibana/visualization/${p.name}-${noise(seedOf(seed, p.index, 700 + i), 8).toString('hex')}.json`, change: 0.12, make: (r) => visualization(r, `${p.name}-viz-${i}`) });
  for (let i = 0; i < p.searches; i++) specs.push({ path: `kibana/search/${p.name}-${noise(seedOf(seed, p.index, 800 + i), 8).toString('hex')}.json`, change: 0.04, make: (r) => search(r, `${p.name}-search-${i}`, `${p.name}.${dsOf(i)}`) });
  if (p.dashboards > 0) specs.push({ path: `kibana/tag/${p.name}-security-solution-default.json`, change: 0, make: () => `{\n    "attributes": {\n        "color": "#4DD2CA",\n        "description": "",\n        "name": "${p.name}"\n    },\n    "id": "${p.name}-security-solution-default",\n    "type": "tag"\n}\n` });
  return specs;
}

/** The next version after `prev`: mostly patch releases, some minor, few major. */
function nextVersion(prev: [number, number, number], r: Rng): [number, number, number] {
  const x = r();
  if (x < 0.05) return [prev[0] + 1, 0, 0];
  if (x < 0.35) return [prev[0], prev[1] + 1, 0];
  return [prev[0], prev[1], prev[2] + 1];
}

/** Versions per package: p50 10, p90 19, max 53 in the real storage; the first package is the longest. */
function versionCounts(seed: number, total: number): number[] {
  const r = rng(seedOf(seed, 7));
  const counts: number[] = [];
  let sum = 0;
  while (sum < total) {
    const n = counts.length === 0 && total >= 400 ? 53 : Math.max(1, Math.min(53, Math.round(logNormal(r, 9.5, 1.85))));
    const take = Math.min(n, total - sum);
    counts.push(take);
    sum += take;
  }
  return counts;
}

function layerOf(v: number, n: number, layers: number): number {
  if (layers === 1) return 0;
  const frac = v / n;
  if (frac < 0.78) return 0;
  if (frac < 0.89 || layers === 2) return 1;
  return layers - 1;
}

function writeFileIn(root: string, rel: string, content: Buffer): void {
  const abs = path.join(root, rel);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, content);
}

function signature(r: Rng): string {
  const body = noise(Math.floor(r() * 1e9), 566).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN PGP SIGNATURE-----\n\n${body}\n=${noise(Math.floor(r() * 1e9), 3).toString('base64')}\n-----END PGP SIGNATURE-----\n`;
}

/** Writes the corpus; returns counts. Layers get versions in order: the last versions land in the later layers. */
export function generateCorpus(opts: CorpusOptions): CorpusResult {
  const zipShare = opts.zipShare ?? 0.1;
  const res: CorpusResult = { packages: 0, versions: 0, files: 0, bytes: 0, overlaps: 0, zips: 0, byLayer: Object.fromEntries(opts.layers.map((l) => [l, 0])) };
  const zipper = new ZipWriter();
  fs.mkdirSync(opts.out, { recursive: true });
  for (const l of opts.layers) fs.mkdirSync(path.join(opts.out, l), { recursive: true });
  const counts = versionCounts(opts.seed, opts.versions);
  for (const [index, n] of counts.entries()) {
    const p = makeProfile(opts.seed, index, n, zipShare);
    const pr = rng(seedOf(opts.seed, index, 2));
    let specs = fileSpecs(p, opts.seed);
    let current = new Map<string, Buffer>();
    let changelog = '';
    let ver: [number, number, number] = pr() < 0.4 ? [0, 1, 0] : [1, 0, 0];
    let kibana = Math.floor(pr() * 5);
    res.packages++;
    for (let v = 0; v < n; v++) {
      const vr = rng(seedOf(opts.seed, index, 1000 + v));
      if (v > 0) {
        ver = nextVersion(ver, vr);
        if (vr() < 0.12) kibana = Math.min(KIBANA_VERSIONS.length - 1, kibana + 1);
        // now and then a package grows: a data stream, a screenshot, a dashboard
        const grow = vr();
        if (p.dataStreams.length < p.targetDataStreams && grow < 0.25) addDataStream(p, vr);
        else if (grow < 0.27) p.screenshots.push(seedOf(opts.seed, index, 200 + v));
        else if (grow < 0.3 && p.kind === 'integration') p.visualizations++;
        specs = fileSpecs(p, opts.seed);
      }
      const layer = layerOf(v, n, opts.layers.length);
      const last = v === n - 1;
      const version = `${ver.join('.')}${last && layer === opts.layers.length - 1 && opts.layers.length > 1 && vr() < 0.3 ? '-beta.1' : ''}`;
      const next = new Map<string, Buffer>();
      for (const s of specs) {
        const prev = current.get(s.path);
        if (prev && vr() >= s.change) { next.set(s.path, prev); continue; }
        const made = s.make(rng(seedOf(opts.seed, index, v, s.path.length, Math.floor(vr() * 1e9))));
        next.set(s.path, typeof made === 'string' ? Buffer.from(made) : made);
      }
      changelog = `- version: ${q(version)}\n  changes:\n${Array.from({ length: int(vr, 1, 3) }, () => `    - description: ${sentence(vr, int(vr, 4, 14))}.\n      type: ${pick(vr, ['enhancement', 'bugfix', 'enhancement', 'breaking-change'])}\n      link: https://github.com/elastic/integrations/pull/${int(vr, 1000, 12000)}\n`).join('')}${changelog}`;
      next.set('changelog.yml', Buffer.from(changelog));
      next.set('manifest.yml', Buffer.from(packageManifest(p, version, KIBANA_VERSIONS[kibana], rng(seedOf(opts.seed, index, 3, v)))));
      current = next;
      const write = (layerIndex: number, files: Map<string, Buffer>) => {
        const layerDir = path.join(opts.out, opts.layers[layerIndex]);
        const sorted = [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        if (p.zip) {
          const zip = zipper.zip(`${p.name}-${version}`, sorted);
          fs.writeFileSync(path.join(layerDir, `${p.name}-${version}.zip`), zip);
          fs.writeFileSync(path.join(layerDir, `${p.name}-${version}.zip.sig`), signature(vr));
          res.zips++;
        } else {
          const dir = path.join(layerDir, p.name, version);
          for (const [rel, content] of sorted) writeFileIn(dir, rel, content);
        }
        res.versions++;
        res.byLayer[opts.layers[layerIndex]]++;
        res.files += files.size;
        for (const c of files.values()) res.bytes += c.length;
      };
      write(layer, current);
      // every 10th package repeats its newest production version in the next layer, with another description
      if (layer === 0 && opts.layers.length > 1 && index % 10 === 5 && layerOf(v + 1, n, opts.layers.length) !== 0) {
        const copy = new Map(current);
        copy.set('manifest.yml', Buffer.from(packageManifest(p, version, KIBANA_VERSIONS[kibana], rng(seedOf(opts.seed, index, 4, v)))));
        write(1, copy);
        res.overlaps++;
      }
    }
  }
  return res;
}

function parseArgs(argv: string[]): CorpusOptions & { stats: string[] } {
  const opts: CorpusOptions & { stats: string[] } = { out: 'bench/corpus/2400', versions: 2400, layers: ['production', 'staging', 'snapshot'], seed: 1, zipShare: 0.1, stats: [] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--out': opts.out = value(); break;
      case '--versions': opts.versions = Number(value()); break;
      case '--layers': opts.layers = value().split(',').filter(Boolean); break;
      case '--seed': opts.seed = Number(value()); break;
      case '--zip-share': opts.zipShare = Number(value()); break;
      case '--stats': opts.stats.push(value()); while (argv[i + 1] && !argv[i + 1].startsWith('--')) opts.stats.push(argv[++i]); break;
      case '--help': case '-h':
        process.stdout.write('Usage: npm run bench:corpus -- [--out bench/corpus/2400] [--versions 2400] [--layers production,staging,snapshot] [--seed 1] [--zip-share 0.1]\n'
          + '       npm run bench:corpus -- --stats <package path>...   (the same statistics, measured on any package tree)\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  for (const [k, v] of [['--versions', opts.versions], ['--seed', opts.seed]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a whole number of at least 1`);
  }
  if (!(opts.zipShare! >= 0 && opts.zipShare! <= 1)) throw new Error('--zip-share must be between 0 and 1');
  if (opts.layers.length === 0) throw new Error('--layers needs at least one layer name');
  return opts;
}

export const STATS_FILE = 'corpus-stats.json';

/** Generates the corpus and writes its measured shape next to it. */
export async function generateMeasuredCorpus(opts: CorpusOptions): Promise<CorpusResult & { stats: TreeStats }> {
  const res = generateCorpus(opts);
  const stats = await measureTree(opts.layers.map((l) => path.join(opts.out, l)));
  fs.writeFileSync(path.join(opts.out, STATS_FILE), `${JSON.stringify({ options: opts, ...res, stats }, null, 2)}\n`);
  return { ...res, stats };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  (async () => {
    const opts = parseArgs(process.argv.slice(2));
    if (opts.stats.length > 0) {
      process.stdout.write(`${formatStats(await measureTree(opts.stats))}\n`);
      return;
    }
    if (fs.existsSync(opts.out) && fs.readdirSync(opts.out).length > 0) throw new Error(`${opts.out} exists and is not empty; remove it or pick another --out`);
    const t0 = Date.now();
    const res = generateCorpus(opts);
    const t1 = Date.now();
    const stats = await measureTree(opts.layers.map((l) => path.join(opts.out, l)));
    fs.writeFileSync(path.join(opts.out, STATS_FILE), `${JSON.stringify({ options: opts, ...res, stats }, null, 2)}\n`);
    process.stdout.write(`corpus: ${res.versions} package versions (${res.packages} packages, ${res.zips} as signed zips; ${Object.entries(res.byLayer).map(([l, c]) => `${l} ${c}`).join(', ')}), ${res.overlaps} overlapping name+version pairs, ${res.files} files, ${(res.bytes / 1e6).toFixed(1)} MB in ${opts.out} (written in ${t1 - t0} ms, measured in ${Date.now() - t1} ms)\n${formatStats(stats)}\n`);
  })().catch((err: Error) => {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = 2;
  });
}
