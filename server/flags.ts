/**
 * Every command-line flag of the server, in one table: its type, default and
 * help. Each flag is also read from `EPR_<FLAG_IN_UPPER_SNAKE>`; the command
 * line overrides the environment. The README's flag table is checked against
 * this one by a test.
 */
export interface FlagDef {
  name: string;
  type: 'string' | 'boolean';
  default: string | boolean;
  help: string;
  /** read from the command line only (no EPR_* variable) */
  cliOnly?: boolean;
}

export const FLAGS: FlagDef[] = [
  { name: 'address', type: 'string', default: 'localhost:8080', help: 'Address to listen on, host:port' },
  { name: 'config', type: 'string', default: 'config.yml', help: 'Path to the configuration file' },
  { name: 'log-level', type: 'string', default: 'info', help: 'Log level: debug, info, warn, error' },
  { name: 'log-type', type: 'string', default: 'ecs', help: 'Log format: ecs (JSON lines) or dev (for humans)' },
  { name: 'dry-run', type: 'boolean', default: false, help: 'Index and validate every package, report, and exit' },
  { name: 'disable-package-validation', type: 'boolean', default: false, help: 'Serve packages even when their manifests have problems' },
  { name: 'allow-unknown-query-parameters', type: 'boolean', default: true, help: 'Ignore unknown query parameters instead of answering 400' },
  { name: 'require-package-signatures', type: 'boolean', default: true, help: 'Refuse zip packages without a .zip.sig signature next to them' },
  { name: 'tls-cert', type: 'string', default: '', help: 'TLS certificate (PEM) to serve HTTPS; needs --tls-key' },
  { name: 'tls-key', type: 'string', default: '', help: 'TLS private key (PEM); needs --tls-cert' },
  { name: 'tls-min-version', type: 'string', default: '1.2', help: 'Oldest TLS version accepted: 1.0, 1.1, 1.2 or 1.3' },
  { name: 'metrics-address', type: 'string', default: '', help: 'Address (host:port) for Prometheus metrics at /metrics; off when empty' },
  { name: 'httpprof', type: 'string', default: '', help: 'Address (host:port) for CPU profiles and heap snapshots at /debug/pprof/; off when empty' },
  { name: 'feature-proxy-mode', type: 'boolean', default: false, help: 'Merge answers of the registry at --proxy-to with local ones, and fetch from it what is not local' },
  { name: 'proxy-to', type: 'string', default: 'https://epr.elastic.co/', help: 'The upstream registry for proxy mode' },
  { name: 'proxy-allow-insecure', type: 'boolean', default: false, help: 'Allow a plain http upstream and skip TLS verification of it' },
  { name: 'proxy-timeout', type: 'string', default: '10s', help: 'How long one request to the upstream may take (e.g. 2s, 500ms); it is tried twice at most' },
  { name: 'version', type: 'boolean', default: false, help: 'Print the version and exit', cliOnly: true },
  { name: 'help', type: 'boolean', default: false, help: 'Show this help and exit', cliOnly: true },
];

export function envName(flag: string): string {
  return `EPR_${flag.toUpperCase().replace(/-/g, '_')}`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration (`10s`, `500ms`, `1m30s`) in milliseconds; undefined when it is not one or is zero. */
export function parseDuration(raw: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(raw)) return undefined;
  let ms = 0;
  for (const m of raw.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
  return ms > 0 ? Math.round(ms) : undefined;
}

export type FlagValues = Record<string, string | boolean>;

export class UsageError extends Error {}

const BOOL_TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const BOOL_FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

function parseBoolValue(flag: string, raw: string, where: string): boolean {
  if (BOOL_TRUE.has(raw)) return true;
  if (BOOL_FALSE.has(raw)) return false;
  throw new UsageError(`${where}: invalid boolean "${raw}" for ${flag} (use true or false)`);
}

/**
 * Resolves the flags: defaults, then EPR_* variables, then the command line.
 * Accepts `--flag value`, `--flag=value`, Go-style `-flag`, and bare booleans.
 * Returns the values and which flags were set explicitly.
 */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv): { values: FlagValues; explicit: Set<string> } {
  const values: FlagValues = {};
  const explicit = new Set<string>();
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  for (const f of FLAGS) {
    values[f.name] = f.default;
    const fromEnv = f.cliOnly ? undefined : env[envName(f.name)];
    if (fromEnv !== undefined && fromEnv !== '') {
      values[f.name] = f.type === 'boolean' ? parseBoolValue(f.name, fromEnv, envName(f.name)) : fromEnv;
      explicit.add(f.name);
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h') { values.help = true; continue; }
    const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}" (flags start with --; see --help)`);
    const def = byName.get(m[1]);
    if (!def) throw new UsageError(`unknown flag --${m[1]} (see --help)`);
    let raw = m[2];
    if (def.type === 'boolean') {
      values[def.name] = raw === undefined ? true : parseBoolValue(`--${def.name}`, raw, 'command line');
    } else {
      if (raw === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`flag --${def.name} needs a value`);
        raw = argv[++i];
      }
      values[def.name] = raw;
    }
    explicit.add(def.name);
  }
  return { values, explicit };
}

export function usage(): string {
  const lines = ['Usage: package-registry [flags]', '', 'Serves Elastic packages over the EPR HTTP API (the API Kibana Fleet uses).', '', 'Flags (each also as an EPR_* environment variable; the command line wins):'];
  for (const f of FLAGS) {
    const def = f.type === 'boolean' ? (f.default ? ' (default true)' : '') : ` (default "${f.default}")`;
    lines.push(`  --${f.name}${f.type === 'string' ? ' <value>' : ''}`);
    lines.push(`        ${f.help}${def}.${f.cliOnly ? '' : ` Env: ${envName(f.name)}`}`);
  }
  return `${lines.join('\n')}\n`;
}
