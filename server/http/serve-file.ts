import type { Request, Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cacheHeader } from './respond.js';
import { HttpError } from './errors.js';
import { etagMatches, strongEtag } from './response-cache.js';

/** A file body that can be sent whole or in one byte range. */
export interface Servable {
  size: number;
  mtime?: Date;
  contentType: string;
  /** a strong validator for these bytes */
  etag?: string;
  /** Opens bytes [start, end] inclusive. */
  open(start: number, end: number): Promise<Readable>;
}

/** Bytes from a buffer already in memory. */
export function bufferServable(buf: Buffer, contentType: string, mtime?: Date): Servable {
  return {
    size: buf.length,
    mtime,
    contentType,
    etag: strongEtag(buf),
    open: async (start, end) => Readable.from([buf.subarray(start, end + 1)]),
  };
}

type Range = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range; several ranges, or a malformed header, mean "send it all" as RFC 9110 allows. */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start >= size) return 'unsatisfiable';
    if (end < start) return undefined;
  }
  return { start, end };
}

/** A file's validator from its size and modification time (to the nanosecond where the OS has it), as nginx does. */
export function fileEtag(size: number, mtime: Date, mtimeNs?: bigint): string {
  return `"${size.toString(16)}-${(mtimeNs ?? BigInt(mtime.getTime()) * 1_000_000n).toString(16)}"`;
}

/**
 * A file's 304 rule, for every writer of files: If-None-Match against the
 * ETag; without it, If-Modified-Since against the file's time (in whole
 * seconds, as HTTP dates have them).
 */
export function fileNotModified(ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, mtime: Date | undefined, etag: string | undefined): boolean {
  if (ifNoneMatch) return etag !== undefined && etagMatches(ifNoneMatch, etag);
  if (!ifModifiedSince || !mtime) return false;
  const since = Date.parse(ifModifiedSince);
  if (Number.isNaN(since)) return false;
  return Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

export async function serveFile(req: Request, res: Response, s: Servable, cacheSeconds: number): Promise<void> {
  cacheHeader(res, cacheSeconds);
  res.setHeader('Accept-Ranges', 'bytes');
  if (s.mtime) res.setHeader('Last-Modified', s.mtime.toUTCString());
  if (s.etag) res.setHeader('ETag', s.etag);
  if (fileNotModified(req.headers['if-none-match'], req.headers['if-modified-since'], s.mtime, s.etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  res.setHeader('Content-Type', s.contentType);
  const range = parseRange(req.headers.range, s.size);
  if (range === 'unsatisfiable') throw HttpError.of('rangeNotSatisfiable', { 'Content-Range': `bytes */${s.size}` });
  let start = 0;
  let end = s.size - 1;
  if (range) {
    ({ start, end } = range);
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${s.size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader('Content-Length', s.size === 0 ? 0 : end - start + 1);
  if (req.method === 'HEAD' || s.size === 0) { res.end(); return; }
  await pipeline(await s.open(start, end), res);
}
