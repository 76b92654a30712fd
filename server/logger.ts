/**
 * Structured logs: one JSON object per line with ECS field names (`log.level`,
 * `@timestamp`, `message`, ...) made by pino with Elastic's ECS formatter, or
 * a short human form with `--log-type dev`.
 *
 * Lines are never written one by one: those logged during one turn of the
 * event loop are handed together to sonic-boom, which writes them to the file
 * descriptor asynchronously, so a request costs its formatting and not a
 * system call (and a reader's wake-up) of its own. A slow or stopped reader
 * never holds up a request: lines wait in memory meanwhile. Past
 * `maxBufferedBytes` waiting, new lines are dropped and counted, and once the
 * reader has caught up one warning says how many were lost.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import { ecsFormat } from '@elastic/ecs-pino-format';
// sonic-boom is CommonJS: its default import is the module object, which also carries the class by name
import sonicBoom from 'sonic-boom';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
  /**
   * The access line of one request, at info: the very record
   * `info('access', fields)` writes (same fields, same order), put together
   * directly, as it is written tens of thousands of times a second.
   */
  access(r: AccessRecord): void;
  /** Text for people (start-up errors), written in order with the log lines. */
  print(text: string): void;
  /**
   * Hands every line logged so far to the output and resolves with true once
   * all of them are written, or with false after `timeoutMs` if the reader
   * has not taken them by then.
   */
  flush(timeoutMs?: number): Promise<boolean>;
}

export interface AccessRecord {
  method: string;
  url: string;
  status: number;
  durationNs: number;
  userAgent: string | undefined;
  sourceAddress: string | undefined;
}

/** The ECS field names of an access line, in their order. */
export function accessFields(r: AccessRecord): Record<string, unknown> {
  return {
    'http.request.method': r.method,
    'url.original': r.url,
    'http.response.status_code': r.status,
    'event.duration': r.durationNs,
    'user_agent.original': r.userAgent,
    'source.address': r.sourceAddress,
  };
}

export function isLogLevel(s: string): s is LogLevel {
  return s in ORDER;
}

/** 32 MiB: about 110,000 access lines, several seconds of full load with a reader that has stopped. */
export const DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

export interface LoggerOptions {
  /** the file descriptor written to (default 2, stderr) */
  fd?: number;
  /** instead of a file descriptor: each batch of lines goes to this function (tests) */
  write?: (chunk: string) => void;
  maxBufferedBytes?: number;
}

export function createLogger(level: LogLevel, type: 'ecs' | 'dev', opts: LoggerOptions = {}): Logger {
  const min = ORDER[level];
  const enabled = (lvl: LogLevel) => ORDER[lvl] >= min;
  let format: (lvl: LogLevel, message: string, fields: Record<string, unknown> | undefined) => void;
  let access: (r: AccessRecord) => void;
  const output: LineOutput = opts.write
    ? new FunctionOutput(opts.write)
    : new BufferedOutput(opts.fd ?? 2, opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES, (dropped) => {
      format('warn', `log output was not keeping up: ${dropped} log line(s) dropped`, { 'log.dropped_lines': dropped });
    });
  if (type === 'dev') {
    format = (lvl, message, fields = {}) => {
      const extra = Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      output.write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${message}${extra ? `  ${extra}` : ''}\n`);
    };
    access = (r) => format('info', 'access', accessFields(r));
  } else {
    const stamp = millisecondStamp();
    const ecs = pinoLogger(level, output, stamp);
    format = (lvl, message, fields = {}) => ecs[lvl](fields, message);
    const tail = `,"ecs.version":${JSON.stringify(ECS_VERSION)},"message":"access"}\n`;
    const str = JSON.stringify;
    access = (r) => output.write(`{"log.level":"info"${stamp()},"http.request.method":${str(r.method)},"url.original":${str(r.url)},"http.response.status_code":${r.status},"event.duration":${r.durationNs}${
      r.userAgent === undefined ? '' : `,"user_agent.original":${str(r.userAgent)}`}${r.sourceAddress === undefined ? '' : `,"source.address":${str(r.sourceAddress)}`}${tail}`);
  }
  const log = (lvl: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] >= min) format(lvl, message, fields);
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    enabled,
    access: (r) => { if (ORDER.info >= min) access(r); },
    print: (text) => output.write(text),
    flush: (timeoutMs = 30_000) => output.flush(timeoutMs),
  };
}

/** The ECS version Elastic's formatter writes (it adds it to every record it formats). */
const ECS_VERSION = String(ecsFormat({ apmIntegration: false }).formatters!.log!({})['ecs.version']);

/**
 * pino's timestamp fragment. The formatter's own formats a new Date for every
 * line; at tens of thousands of lines a second, one string per millisecond is enough.
 */
function millisecondStamp(): () => string {
  let lastMs = 0;
  let lastStamp = '';
  return () => {
    const now = Date.now();
    if (now !== lastMs) { lastMs = now; lastStamp = `,"@timestamp":"${new Date(now).toISOString()}"`; }
    return lastStamp;
  };
}

function pinoLogger(level: LogLevel, output: LineOutput, timestamp: () => string): PinoLogger {
  // base: null keeps the lines to the fields they had (no process.pid, host.hostname)
  return pino({ ...ecsFormat({ apmIntegration: false }), timestamp, base: null, level }, output);
}

interface LineOutput {
  write(text: string): void;
  flush(timeoutMs: number): Promise<boolean>;
}

class FunctionOutput implements LineOutput {
  constructor(private readonly fn: (chunk: string) => void) {}
  write(text: string): void { this.fn(text); }
  async flush(): Promise<boolean> { return true; }
}

/**
 * Lines of one event-loop turn joined into one write to sonic-boom (its own
 * per-write bookkeeping measures the whole pending buffer, so it is fed
 * batches, not lines), with a bound on what may wait for a slow reader.
 */
class BufferedOutput implements LineOutput {
  private lines: string[] = [];
  private scheduled = false;
  /** bytes handed to sonic-boom and not written yet */
  private pending = 0;
  private dropped = 0;
  private broken = false;
  private waiters: Array<() => void> = [];
  private readonly sonic: sonicBoom.SonicBoom;

  constructor(fd: number, private readonly maxBytes: number, private readonly reportDropped: (n: number) => void) {
    // 64 KiB writes: a pipe's whole capacity in one system call
    this.sonic = new sonicBoom.SonicBoom({ fd, sync: false, maxWrite: 64 * 1024 });
    this.sonic.on('write', (n: number) => {
      this.pending -= n;
      if (this.pending === 0) this.caughtUp();
    });
    // the reader is gone (EPIPE and the like): nothing can be written any more, and the server goes on
    this.sonic.on('error', () => {
      this.broken = true;
      this.pending = 0;
      this.lines = [];
      this.caughtUp();
    });
  }

  write(text: string): void {
    if (this.broken) return;
    this.lines.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.hand);
    }
  }

  /** `uncapped`: the warning about dropped lines is never dropped itself */
  private readonly hand = (uncapped?: boolean) => {
    this.scheduled = false;
    if (this.lines.length === 0 || this.broken) return;
    const chunk = this.lines.length === 1 ? this.lines[0] : this.lines.join('');
    this.lines = [];
    const bytes = Buffer.byteLength(chunk);
    if (!uncapped && this.pending + bytes > this.maxBytes) {
      let n = 0;
      for (let i = chunk.indexOf('\n'); i >= 0; i = chunk.indexOf('\n', i + 1)) n++;
      this.dropped += n;
      // nothing in flight whose end would report it
      if (this.pending === 0) this.caughtUp();
      return;
    }
    this.pending += bytes;
    this.sonic.write(chunk);
  };

  private caughtUp(): void {
    if (this.dropped > 0 && !this.broken) {
      const n = this.dropped;
      this.dropped = 0;
      this.reportDropped(n);
      this.hand(true);
      return;
    }
    if (this.lines.length > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  flush(timeoutMs: number): Promise<boolean> {
    this.hand();
    if (this.pending === 0) this.caughtUp(); // reports lines dropped meanwhile, if any
    if (this.broken || this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== done); resolve(false); }, timeoutMs);
      const done = () => { clearTimeout(timer); resolve(true); };
      this.waiters.push(done);
    });
  }
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createLogger('error', 'ecs', { write: () => undefined });
