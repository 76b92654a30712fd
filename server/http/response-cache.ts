import crypto from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import type http from 'node:http';
import { HttpError } from './errors.js';
import { sendError } from './respond.js';
import { parseRange } from './serve-file.js';
import { openFile, sendFileBody } from './send-file.js';

/**
 * Ready-made answers for the JSON routes. The package index never changes
 * while the server runs, so an answer computed once for a URL is the answer
 * for every later request of that URL: it is kept here with its headers, its
 * strong ETag and (made on first demand) its gzip and brotli forms, and
 * written straight to the socket without going through the router.
 */
export interface CachedAnswer {
  body: Buffer;
  etag: string;
  contentType: string;
  cacheControl: string;
  cors: boolean;
  /** files: Last-Modified (HTTP date) and byte ranges */
  lastModified?: string;
  ranges?: boolean;
  /** worth compressing (text); images and archives are not */
  compressible: boolean;
  gzip?: Buffer;
  br?: Buffer;
  /** the fast path's response heads up to the Date header, by reply key */
  heads?: Map<string, string>;
}

/**
 * A ready answer whose body is a file made once (a directory package's zip):
 * its head is kept as the route wrote it, its bytes are read from the file
 * for every request. GET only: HEAD and anything conditional go to the route.
 */
export interface FileAnswer {
  file: string;
  size: number;
  /** header names in the route's order and casing */
  headers: Array<[string, string | number | string[]]>;
  /** the file's bytes, once read (within the cache's budget for them): one write, no file reads */
  body?: Buffer;
}

/** The headers set on a response so far, in order and with their casing, to write them again later. */
export function headersOf(res: http.ServerResponse): FileAnswer['headers'] {
  // getRawHeaderNames (Node >= 15.13) is missing from @types/node 20
  const names = (res as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames();
  return names.map((name) => [name, res.getHeader(name)!] as [string, string | number | string[]]);
}

/**
 * Writes a file answer; `fallback` answers instead when the file is gone
 * (evicted from its cache since), before anything has been written.
 */
export function writeFileAnswer(res: http.ServerResponse, a: FileAnswer, fallback: () => void): void {
  if (a.body) {
    for (const [name, value] of a.headers) res.setHeader(name, value);
    res.writeHead(200);
    res.end(a.body);
    return;
  }
  openFile(a.file).then((fd) => {
    for (const [name, value] of a.headers) res.setHeader(name, value);
    res.writeHead(200);
    sendFileBody(res, fd, 0, a.size - 1).catch(() => undefined); // a read error destroys the response itself
  }, fallback);
}

/** Smaller bodies are not worth compressing. */
const MIN_COMPRESS = 1024;

export function strongEtag(body: Buffer): string {
  return `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
}

export function makeAnswer(body: Buffer, contentType: string, cacheSeconds: number, cors: boolean): CachedAnswer {
  return { body, etag: strongEtag(body), contentType, cacheControl: `max-age=${cacheSeconds}, public`, cors, compressible: true };
}

/** A package file kept in memory: Last-Modified, ranges, and compression for text. */
export function makeFileAnswer(body: Buffer, contentType: string, cacheSeconds: number, mtime: Date | undefined): CachedAnswer {
  return {
    ...makeAnswer(body, contentType, cacheSeconds, true),
    lastModified: mtime?.toUTCString(),
    ranges: true,
    compressible: /^(text\/|application\/json|image\/svg\+xml)/.test(contentType),
  };
}

function notModifiedSince(ifModifiedSince: string | undefined, lastModified: string | undefined): boolean {
  if (!ifModifiedSince || !lastModified) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && Date.parse(lastModified) <= since;
}

/** True when an If-None-Match header names this ETag (or `*`). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

type Encoding = 'br' | 'gzip' | undefined;

/** Clients send the same few Accept-Encoding values again and again. */
const encodingOf = new Map<string, Encoding>();

export function preferredEncoding(acceptEncoding: string | undefined): Encoding {
  if (!acceptEncoding) return undefined;
  const known = encodingOf.get(acceptEncoding);
  if (known !== undefined || encodingOf.has(acceptEncoding)) return known;
  const enc = parseAcceptEncoding(acceptEncoding);
  if (encodingOf.size >= 256) encodingOf.clear();
  encodingOf.set(acceptEncoding, enc);
  return enc;
}

function parseAcceptEncoding(acceptEncoding: string): Encoding {
  const accepted = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)).find(Boolean);
    accepted.set(name.trim(), q ? Number(q[1]) : 1);
  }
  const ok = (e: string) => (accepted.get(e) ?? accepted.get('*') ?? 0) > 0;
  if (ok('br')) return 'br';
  if (ok('gzip')) return 'gzip';
  return undefined;
}

function encoded(a: CachedAnswer, enc: Encoding): Buffer | undefined {
  if (!enc || a.body.length < MIN_COMPRESS) return undefined;
  if (enc === 'gzip') return (a.gzip ??= zlib.gzipSync(a.body, { level: 6 }));
  return (a.br ??= zlib.brotliCompressSync(a.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }));
}

/** The request headers that change what a ready answer sends. */
export interface AnswerRequest {
  method: string;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
  range: string | undefined;
  acceptEncoding: string | undefined;
}

export type ReplyHeaders = Array<[string, string | number]>;

/** A ready answer as sent for one request: status, headers in order (before Date and Connection), body. */
export interface Reply {
  status: 200 | 206 | 304;
  /** the same for every request with this key (200 and 304; a 206 has none) */
  key: string | undefined;
  headers(): ReplyHeaders;
  /** absent for 304 and HEAD */
  body: Buffer | undefined;
}

function baseHeaders(a: CachedAnswer): ReplyHeaders {
  const h: ReplyHeaders = [['Content-Type', a.contentType], ['Cache-Control', a.cacheControl], ['ETag', a.etag], ['Vary', 'Accept-Encoding']];
  if (a.cors) h.push(['Access-Control-Allow-Origin', '*']);
  if (a.lastModified) h.push(['Last-Modified', a.lastModified]);
  if (a.ranges) h.push(['Accept-Ranges', 'bytes']);
  return h;
}

/**
 * What a ready answer sends for a request: 304 on a matching If-None-Match
 * (or If-Modified-Since without it), one byte range, or the body compressed
 * when the client takes it; `unsatisfiable` for a range past the end.
 * One rule for both writers below.
 */
export function replyFor(a: CachedAnswer, r: AnswerRequest): Reply | 'unsatisfiable' {
  if (r.ifNoneMatch ? etagMatches(r.ifNoneMatch, a.etag) : notModifiedSince(r.ifModifiedSince, a.lastModified)) {
    return { status: 304, key: '304', headers: () => baseHeaders(a), body: undefined };
  }
  const head = r.method === 'HEAD';
  const range = a.ranges ? parseRange(r.range, a.body.length) : undefined;
  if (range === 'unsatisfiable') return range;
  if (range) {
    return {
      status: 206,
      key: undefined,
      headers: () => [...baseHeaders(a), ['Content-Range', `bytes ${range.start}-${range.end}/${a.body.length}`], ['Content-Length', range.end - range.start + 1]],
      body: head ? undefined : a.body.subarray(range.start, range.end + 1),
    };
  }
  const enc = a.compressible ? preferredEncoding(r.acceptEncoding) : undefined;
  const compressed = encoded(a, enc);
  const body = compressed ?? a.body;
  return {
    status: 200,
    key: compressed ? `200${enc}` : '200',
    headers: () => [...baseHeaders(a), ...(compressed ? [['Content-Encoding', enc!] as [string, string]] : []), ['Content-Length', body.length]],
    body: head ? undefined : body,
  };
}

/** Writes a ready answer through Node's response. */
export function writeAnswer(req: http.IncomingMessage, res: http.ServerResponse, a: CachedAnswer): void {
  const reply = replyFor(a, {
    method: req.method ?? 'GET',
    ifNoneMatch: req.headers['if-none-match'],
    ifModifiedSince: req.headers['if-modified-since'],
    range: req.headers.range,
    acceptEncoding: req.headers['accept-encoding'],
  });
  if (reply === 'unsatisfiable') {
    sendError(res, HttpError.of('rangeNotSatisfiable', { 'Content-Range': `bytes */${a.body.length}` }));
    return;
  }
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of reply.headers()) headers[name] = value;
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** A bounded map from request URL to answer; the oldest entries go first when it is full. */
export class ResponseCache {
  private readonly map = new Map<string, CachedAnswer>();
  private readonly files = new Map<string, FileAnswer>();
  private bytes = 0;
  private fileBodyBytes = 0;

  /** 32 MiB of file bodies: the zips being downloaded most, each at most 8 MiB */
  constructor(private readonly maxEntries = 5000, private readonly maxBytes = 64 * 1024 * 1024, private readonly maxFileBodyBytes = 32 * 1024 * 1024) {}

  get(url: string): CachedAnswer | undefined {
    return this.map.get(url);
  }

  set(url: string, a: CachedAnswer): void {
    if (this.map.has(url) || a.body.length > this.maxBytes / 4) return;
    this.map.set(url, a);
    this.bytes += a.body.length;
    while (this.map.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [oldest, entry] = this.map.entries().next().value as [string, CachedAnswer];
      this.map.delete(oldest);
      this.bytes -= entry.body.length;
    }
  }

  getFile(url: string): FileAnswer | undefined {
    return this.files.get(url);
  }

  /** Keeps a file answer; its bytes are read into memory meanwhile when they fit the budget for file bodies. */
  setFile(url: string, a: FileAnswer): void {
    this.deleteFile(url);
    this.files.set(url, a);
    if (this.files.size > this.maxEntries) this.deleteFile(this.files.keys().next().value as string);
    if (a.size > this.maxFileBodyBytes / 4) return;
    fs.readFile(a.file, (err, body) => {
      if (err || body.length !== a.size || this.files.get(url) !== a) return;
      a.body = body;
      this.fileBodyBytes += body.length;
      // the oldest bodies go first; their answers are written from the file again
      for (const [otherUrl, other] of this.files) {
        if (this.fileBodyBytes <= this.maxFileBodyBytes) break;
        if (other !== a) this.evictFileBody(otherUrl);
      }
    });
  }

  /** The file answer's bytes leave memory; it is written from its file again. */
  evictFileBody(url: string): void {
    const a = this.files.get(url);
    if (!a?.body) return;
    this.fileBodyBytes -= a.body.length;
    a.body = undefined;
  }

  deleteFile(url: string): void {
    const a = this.files.get(url);
    if (a?.body) this.fileBodyBytes -= a.body.length;
    this.files.delete(url);
  }

  get size(): number { return this.map.size; }
}
