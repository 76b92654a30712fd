import crypto from 'node:crypto';
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

export function preferredEncoding(acceptEncoding: string | undefined): Encoding {
  if (!acceptEncoding) return undefined;
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

/** Writes a ready answer: 304 on a matching If-None-Match, compressed when the client takes it. */
export function writeAnswer(req: http.IncomingMessage, res: http.ServerResponse, a: CachedAnswer): void {
  const headers: http.OutgoingHttpHeaders = {
    'Content-Type': a.contentType,
    'Cache-Control': a.cacheControl,
    ETag: a.etag,
    Vary: 'Accept-Encoding',
  };
  if (a.cors) headers['Access-Control-Allow-Origin'] = '*';
  if (a.lastModified) headers['Last-Modified'] = a.lastModified;
  if (a.ranges) headers['Accept-Ranges'] = 'bytes';
  const inm = req.headers['if-none-match'];
  if (inm ? etagMatches(inm, a.etag) : notModifiedSince(req.headers['if-modified-since'], a.lastModified)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const range = a.ranges ? parseRange(req.headers.range, a.body.length) : undefined;
  if (range === 'unsatisfiable') {
    sendError(res, HttpError.of('rangeNotSatisfiable', { 'Content-Range': `bytes */${a.body.length}` }));
    return;
  }
  if (range) {
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${a.body.length}`;
    headers['Content-Length'] = range.end - range.start + 1;
    res.writeHead(206, headers);
    res.end(req.method === 'HEAD' ? undefined : a.body.subarray(range.start, range.end + 1));
    return;
  }
  const enc = a.compressible ? preferredEncoding(req.headers['accept-encoding']) : undefined;
  const compressed = encoded(a, enc);
  const body = compressed ?? a.body;
  if (compressed) headers['Content-Encoding'] = enc;
  headers['Content-Length'] = body.length;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** A bounded map from request URL to answer; the oldest entries go first when it is full. */
export class ResponseCache {
  private readonly map = new Map<string, CachedAnswer>();
  private readonly files = new Map<string, FileAnswer>();
  private bytes = 0;

  constructor(private readonly maxEntries = 5000, private readonly maxBytes = 64 * 1024 * 1024) {}

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

  setFile(url: string, a: FileAnswer): void {
    this.files.delete(url);
    this.files.set(url, a);
    if (this.files.size > this.maxEntries) this.files.delete(this.files.keys().next().value as string);
  }

  deleteFile(url: string): void {
    this.files.delete(url);
  }

  get size(): number { return this.map.size; }
}
