import crypto from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import type http from 'node:http';
import { HttpError } from './errors.js';
import { sendError } from './respond.js';
import { fileNotModified, parseRange } from './serve-file.js';
import { openFile, sendFileBody, sendPiecesBody } from './send-file.js';
import type { BytePiece } from '../packages/zip-recipe.js';

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
 * The bytes of file answers: a file made once (a directory package's zip) or
 * a zip package as stored (a plain zip file, or a recipe whose bytes are
 * spread over the recipe and its layer's entry store). Shared by every URL
 * that answers with them (the first segment of `/epr/...` is free), and
 * held in memory within the cache's budget for file bodies.
 */
export interface FileBytes {
  /** what they are known by: the file they are read from (the zip, or its recipe) */
  file: string;
  size: number;
  /** where bytes [start, end] (inclusive) are kept, when they are not the file itself */
  pieces?: (start: number, end: number) => BytePiece[];
  /** all the bytes, once read (within the cache's budget): one write, no file reads */
  body?: Buffer;
  /** the cache's clock when last asked for, and how often since registered */
  used: number;
  hits: number;
  loading: boolean;
  /** file answers (URLs) sharing them */
  refs: number;
}

/** A file's bytes as the cache holds them, for `file` (of `size` bytes), read from `pieces` when given. */
export function fileBytes(file: string, size: number, pieces?: FileBytes['pieces']): FileBytes {
  return { file, size, pieces, used: 0, hits: 0, loading: false, refs: 0 };
}

/** The pieces of bytes [start, end] of these bytes, as they are now. */
export function piecesOf(b: FileBytes, start: number, end: number): BytePiece[] {
  if (b.body) return [{ data: b.body.subarray(start, end + 1) }];
  return b.pieces ? b.pieces(start, end) : [{ file: b.file, from: start, to: end + 1 }];
}

/** A stored file's validators and headers: an answer with them takes HEAD, ranges, If-None-Match and If-Modified-Since as serveFile does. */
export interface StoredFile {
  etag: string;
  mtime: Date;
  contentType: string;
  cacheSeconds: number;
}

/**
 * A ready answer whose body is a file. A directory package's zip: GET only,
 * its head kept as the route wrote it (HEAD and the rest go to the route).
 * A stored file (a zip package): every GET and HEAD, with the route's
 * validators, ranges and 304s, answered by fileReplyFor. Written from memory
 * when its bytes are held, else read from where they are kept.
 */
export interface FileAnswer {
  bytes: FileBytes;
  /** the 200's header names and values in the route's order and casing */
  headers: Array<[string, string | number | string[]]>;
  stored?: StoredFile;
  /** the fast path's response heads up to the Date header, by reply key */
  heads?: Map<string, string>;
}

/** The headers set on a response so far, in order and with their casing, to write them again later. */
export function headersOf(res: http.ServerResponse): FileAnswer['headers'] {
  // getRawHeaderNames (Node >= 15.13) is missing from @types/node 20
  const names = (res as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames();
  return names.map((name) => [name, res.getHeader(name)!] as [string, string | number | string[]]);
}

type FileHeaders = FileAnswer['headers'];

/** The headers serveFile sets before it looks at the request, in its order (after the route's CORS header). */
function storedBase(s: StoredFile): FileHeaders {
  return [
    ['Access-Control-Allow-Origin', '*'],
    ['Cache-Control', `max-age=${s.cacheSeconds}, public`],
    ['Accept-Ranges', 'bytes'],
    ['Last-Modified', s.mtime.toUTCString()],
    ['ETag', s.etag],
  ];
}

/** A stored file's answer: the headers of its 200 as the artifact route sends them. */
export function storedFileAnswer(bytes: FileBytes, stored: StoredFile): FileAnswer {
  return { bytes, stored, headers: [...storedBase(stored), ['Content-Type', stored.contentType], ['Content-Length', bytes.size]] };
}

/** A file answer as sent for one request: status, headers in order (before Date and Connection), the bytes sent. */
export interface FileReply {
  status: 200 | 206 | 304;
  /** the same head for every request with this key (200 and 304; a 206 has none) */
  key: string | undefined;
  headers(): FileHeaders;
  /** bytes [start, end] of the file as the body; absent for 304 and HEAD */
  range: { start: number; end: number } | undefined;
}

/**
 * What a file answer sends for a request, the same for both writers:
 * undefined when the route must answer it (a made zip asked for with HEAD),
 * `unsatisfiable` for a range past the end (the route's 416).
 */
export function fileReplyFor(a: FileAnswer, r: AnswerRequest): FileReply | 'unsatisfiable' | undefined {
  const size = a.bytes.size;
  const head = r.method === 'HEAD';
  const s = a.stored;
  if (!s) return r.method === 'GET' ? { status: 200, key: '200', headers: () => a.headers, range: { start: 0, end: size - 1 } } : undefined;
  if (fileNotModified(r.ifNoneMatch, r.ifModifiedSince, s.mtime, s.etag)) return { status: 304, key: '304', headers: () => storedBase(s), range: undefined };
  const range = parseRange(r.range, size);
  if (range === 'unsatisfiable') return range;
  if (range) {
    return {
      status: 206,
      key: undefined,
      headers: () => [...storedBase(s), ['Content-Type', s.contentType], ['Content-Range', `bytes ${range.start}-${range.end}/${size}`], ['Content-Length', range.end - range.start + 1]],
      range: head ? undefined : range,
    };
  }
  return { status: 200, key: '200', headers: () => a.headers, range: head ? undefined : { start: 0, end: size - 1 } };
}

/**
 * Writes a file answer through Node's response (for the request `res.req`);
 * `fallback` answers instead when it is not this answer's to write (a made
 * zip asked for with HEAD) or its file is gone (evicted from its cache
 * since), before anything has been written.
 */
export function writeFileAnswer(res: http.ServerResponse, a: FileAnswer, fallback: () => void): void {
  void sendFileAnswer(res, a).then((sent) => { if (!sent) fallback(); }, () => undefined); // a read error destroys the response itself
}

/**
 * The same, as a promise: false (nothing written) when it is the route's to
 * answer or a file it starts with cannot be opened; rejects when a read fails
 * after the head is out (the response is destroyed).
 */
export async function sendFileAnswer(res: http.ServerResponse, a: FileAnswer): Promise<boolean> {
  const req = res.req;
  const reply = fileReplyFor(a, {
    method: req.method ?? 'GET',
    ifNoneMatch: req.headers['if-none-match'],
    ifModifiedSince: req.headers['if-modified-since'],
    range: req.headers.range,
    acceptEncoding: undefined,
  });
  if (reply === undefined) return false;
  if (reply === 'unsatisfiable') {
    // as the route: its headers, then the error's (which takes some of them off)
    for (const [name, value] of a.headers) if (name !== 'Content-Length') res.setHeader(name, value);
    sendError(res, HttpError.of('rangeNotSatisfiable', { 'Content-Range': `bytes */${a.bytes.size}` }));
    return true;
  }
  const pieces = reply.range ? piecesOf(a.bytes, reply.range.start, reply.range.end) : [];
  // the first file is opened before the head is written: a file gone since means nothing sent yet
  const first = pieces[0]?.file !== undefined ? await openFile(pieces[0].file).catch(() => undefined) : -1;
  if (first === undefined) return false;
  for (const [name, value] of reply.headers()) res.setHeader(name, value);
  res.writeHead(reply.status);
  if (!reply.range) { res.end(); return true; }
  if (first >= 0) {
    const p = pieces[0] as { file: string; from: number; to: number };
    if (pieces.length === 1) { await sendFileBody(res, first, p.from, p.to - 1); return true; }
    fs.close(first, () => undefined);
  }
  await sendPiecesBody(res, pieces);
  return true;
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
  /** file bytes by their file, shared by the answers of every URL naming them */
  private readonly held = new Map<string, FileBytes>();
  private bytes = 0;
  private bodyBytes = 0;
  private clock = 0;

  /**
   * 32 MiB of file bodies (zips of directory packages and zip packages as
   * stored alike: one budget), each at most a quarter of it (8 MiB); the
   * least recently downloaded go first.
   */
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

  /** The file answer of `url`, counted as a download of its bytes (which come into memory when they have earned it). */
  getFile(url: string): FileAnswer | undefined {
    const a = this.files.get(url);
    if (a) this.use(a.bytes);
    return a;
  }

  /** A file answer already kept for these bytes' file, under any URL (the first segment of a zip's URL is free). */
  heldBytes(file: string, size: number): FileBytes | undefined {
    const b = this.held.get(file);
    return b && b.size === size ? b : undefined;
  }

  /**
   * Keeps a file answer. Its bytes are shared with the other URLs' answers
   * of the same file, and read into memory now when they fit the budget for
   * file bodies without pushing others out, or once downloaded again.
   */
  setFile(url: string, a: FileAnswer): void {
    this.deleteFile(url);
    const known = this.heldBytes(a.bytes.file, a.bytes.size);
    if (known) a.bytes = known;
    else {
      const old = this.held.get(a.bytes.file);
      if (old) this.dropBytes(old);
      this.held.set(a.bytes.file, a.bytes);
    }
    a.bytes.refs++;
    this.files.set(url, a);
    if (this.files.size > this.maxEntries) this.deleteFile(this.files.keys().next().value as string);
    this.use(a.bytes);
  }

  /** A download of `b`: its bytes are read into memory when they fit the budget, or (pushing the least recently used out) when asked for twice. */
  private use(b: FileBytes): void {
    b.used = ++this.clock;
    b.hits++;
    if (b.body || b.loading || b.size === 0 || b.size > this.maxFileBodyBytes / 4 || this.held.get(b.file) !== b) return;
    if (b.hits < 2 && this.bodyBytes + b.size > this.maxFileBodyBytes) return;
    b.loading = true;
    // counted from now: bodies being read are within the budget too
    this.bodyBytes += b.size;
    this.makeRoom(b);
    if (this.bodyBytes > this.maxFileBodyBytes) {
      // the rest of the budget is being read into: not this one, not now
      this.bodyBytes -= b.size;
      b.loading = false;
      return;
    }
    readBytes(b).then((body) => {
      if (!b.loading) return; // dropped meanwhile, and uncounted then
      b.loading = false;
      if (this.held.get(b.file) !== b || body.length !== b.size) { this.bodyBytes -= b.size; return; }
      b.body = body;
    }, () => {
      if (!b.loading) return;
      b.loading = false;
      this.bodyBytes -= b.size;
    });
  }

  /** Least recently used bodies out until the budget holds (never `keep`'s). */
  private makeRoom(keep: FileBytes): void {
    while (this.bodyBytes > this.maxFileBodyBytes) {
      let victim: FileBytes | undefined;
      for (const b of this.held.values()) if (b !== keep && b.body && (!victim || b.used < victim.used)) victim = b;
      if (!victim) return; // the rest is being read: the reads already counted end within it
      this.dropBody(victim);
    }
  }

  private dropBody(b: FileBytes): void {
    if (!b.body) return;
    this.bodyBytes -= b.body.length;
    b.body = undefined;
    // earned again from scratch
    b.hits = 0;
  }

  private dropBytes(b: FileBytes): void {
    this.dropBody(b);
    if (b.loading) { this.bodyBytes -= b.size; b.loading = false; }
    if (this.held.get(b.file) === b) this.held.delete(b.file);
  }

  /** The file answer's bytes leave memory; it is written from its file again. */
  evictFileBody(url: string): void {
    const a = this.files.get(url);
    if (a) this.dropBody(a.bytes);
  }

  deleteFile(url: string): void {
    const a = this.files.get(url);
    if (!a) return;
    this.files.delete(url);
    if (--a.bytes.refs <= 0) this.dropBytes(a.bytes);
  }

  get size(): number { return this.map.size; }

  /** Bytes of file bodies held in memory or being read into it, and the bound they keep within. */
  get fileBodyBytes(): number { return this.bodyBytes; }
  get fileBodyBudget(): number { return this.maxFileBodyBytes; }
}

/** All of a file answer's bytes, read from where they are kept. */
async function readBytes(b: FileBytes): Promise<Buffer> {
  if (!b.pieces) return fs.promises.readFile(b.file);
  const out = Buffer.allocUnsafe(b.size);
  let at = 0;
  for (const p of b.pieces(0, b.size - 1)) {
    if (p.data) { at += p.data.copy(out, at); continue; }
    const fh = await fs.promises.open(p.file, 'r');
    try {
      const want = p.to - p.from;
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(out, at + got, want - got, p.from + got);
        if (bytesRead === 0) throw new Error(`${p.file} ended early`);
        got += bytesRead;
      }
      at += want;
    } finally {
      await fh.close();
    }
  }
  if (at !== b.size) throw new Error(`${b.file}: ${at} bytes read, ${b.size} expected`);
  return out;
}
