/**
 * One HTTP exchange with a registry or a token service, over node:http(s)
 * rather than fetch: uploads stream from the blob source with an exact
 * Content-Length, and one inactivity timer covers the whole exchange (a
 * server that stops reading our body or stops sending its own is a stall,
 * not a wait without end). Retrying is the caller's business: this file only
 * says whether a failure is worth another try (TransientError) or not.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform, pipeline } from 'node:stream';
import { TransientError } from './retry.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;

// keep-alive so a push of many blobs does not open one connection per request;
// idle sockets are unref'd by the agent, so they never hold the process open
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 8 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 8 }),
  httpsNoVerify: new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false }),
};

/** A failure that is not worth another try (refused, unknown host, bad certificate, a source that cannot be read). */
export class TransportError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

export interface SendOptions {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** a buffer, or a stream made anew for each try */
  body?: Buffer | (() => Readable);
  /** required with a stream body: registries want Content-Length on a monolithic upload */
  contentLength?: number;
  timeoutMs?: number;
  /** https without certificate checks (an insecure registry) */
  insecureTls?: boolean;
  /** follow 3xx (blob downloads are often redirected to object storage) */
  followRedirects?: boolean;
  onBytesSent?(total: number): void;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** where the answer came from, after redirects (relative Locations resolve against it) */
  url: URL;
  body: http.IncomingMessage;
  /** the whole body (bounded: registries' JSON answers are small, a manifest at most a few MB) */
  buffer(limit?: number): Promise<Buffer>;
  /** reads and drops the body so the connection can be reused */
  discard(): Promise<void>;
}

export function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'EHOSTUNREACH', 'ENETUNREACH']);

/** What a socket-level failure means for the caller: try again, or stop with a message a person can act on. */
export function classifyNetworkError(err: unknown, url: URL): Error {
  if (err instanceof TransientError || err instanceof TransportError) return err;
  const e = err as NodeJS.ErrnoException;
  const where = url.host;
  if (e?.code && TRANSIENT_CODES.has(e.code)) return new TransientError(`connection to ${where} dropped (${e.code})`);
  if (e?.message === 'socket hang up' || e?.message === 'aborted') return new TransientError(`connection to ${where} dropped (${e.message})`);
  if (e?.code === 'ECONNREFUSED') return new TransportError(`cannot connect to ${where}: connection refused`, e.code);
  if (e?.code === 'ENOTFOUND') return new TransportError(`cannot resolve ${url.hostname}`, e.code);
  if (e?.code && /CERT|SSL|TLS|SELF_SIGNED|EPROTO/.test(e.code)) return new TransportError(`TLS with ${where} failed: ${e.message}`, e.code);
  return new TransportError(`request to ${where} failed: ${e?.message ?? String(err)}`, e?.code);
}

export async function send(o: SendOptions): Promise<HttpResponse> {
  let url = o.url;
  let headers = { ...(o.headers ?? {}) };
  for (let hop = 0; ; hop++) {
    const res = await sendOnce({ ...o, url, headers });
    const location = header(res.headers, 'location');
    if (!o.followRedirects || ![301, 302, 303, 307, 308].includes(res.status) || !location) return res;
    await res.discard();
    if (hop >= MAX_REDIRECTS) throw new TransportError(`more than ${MAX_REDIRECTS} redirects from ${o.url.host}`);
    const next = new URL(location, url);
    // credentials are for the registry, never for wherever it sends us
    if (next.host !== url.host) {
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    }
    url = next;
  }
}

function sendOnce(o: SendOptions): Promise<HttpResponse> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const isHttps = o.url.protocol === 'https:';
  const lib = isHttps ? https : http;
  const agent = isHttps ? (o.insecureTls ? agents.httpsNoVerify : agents.https) : agents.http;
  const headers: Record<string, string> = { 'user-agent': 'epr-builder', ...(o.headers ?? {}) };
  if (Buffer.isBuffer(o.body)) headers['content-length'] = String(o.body.length);
  else if (o.body) headers['content-length'] = String(o.contentLength ?? 0);
  else if (['PUT', 'POST', 'PATCH'].includes(o.method)) headers['content-length'] = '0';

  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      reject(classifyNetworkError(err, o.url));
    };
    const req = lib.request(o.url, { method: o.method, headers, agent }, (res) => {
      settled = true;
      resolve(wrapResponse(res, o.url, req));
    });
    // socket inactivity both ways: a server that stops reading our upload or stops answering
    req.setTimeout(timeoutMs, () => req.destroy(new TransientError(`${o.url.host} stalled: nothing sent or received for ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', fail);
    if (!o.body) return void req.end();
    if (Buffer.isBuffer(o.body)) return void req.end(o.body);
    let source: Readable;
    try {
      source = o.body();
    } catch (err) {
      req.destroy();
      return fail(new TransportError(`cannot read the blob to send: ${(err as Error).message}`));
    }
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        o.onBytesSent?.(sent);
        cb(null, chunk);
      },
    });
    let sourceFailed: Error | undefined;
    source.once('error', (err) => (sourceFailed = err));
    pipeline(source, counter, req, (err) => {
      if (!err) return;
      if (sourceFailed) {
        req.destroy();
        fail(new TransportError(`cannot read the blob to send: ${sourceFailed.message}`));
      } else fail(err);
    });
  });
}

function wrapResponse(res: http.IncomingMessage, url: URL, req: http.ClientRequest): HttpResponse {
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    url,
    body: res,
    async buffer(limit = 16 * 1024 * 1024) {
      const chunks: Buffer[] = [];
      let n = 0;
      try {
        for await (const c of res as AsyncIterable<Buffer>) {
          n += c.length;
          if (n > limit) {
            req.destroy();
            throw new TransportError(`the answer from ${url.host} is larger than ${limit} bytes`);
          }
          chunks.push(c);
        }
      } catch (err) {
        throw classifyNetworkError(err, url);
      }
      return Buffer.concat(chunks);
    },
    async discard() {
      try {
        for await (const _ of res) void _;
      } catch {
        // the status is what the caller wanted; a body lost on the way does not matter
      }
    },
  };
}
