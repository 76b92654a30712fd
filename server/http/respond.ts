import type http from 'node:http';
import type { Response } from 'express';
import type { Json } from '../packages/fields.js';
import type { HttpError } from './errors.js';
import { makeAnswer, writeAnswer, type ResponseCache } from './response-cache.js';

/** Matched routes let any origin read them, as EPR does (no other CORS headers). */
export function allowCors(res: Response): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
}

/** Cache-Control for a successful answer. */
export function cacheHeader(res: Response, seconds: number): void {
  res.setHeader('Cache-Control', `max-age=${seconds}, public`);
}

/** 2-space indented JSON, as EPR writes it (no HTML escaping). */
export function jsonBody(value: Json | unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
}

/**
 * Sends a JSON answer (CORS, Cache-Control, strong ETag, compression) and,
 * when a cache is given, keeps it for the next request of the same URL.
 */
export function sendJson(res: Response, body: Buffer, cacheSeconds: number, cache?: ResponseCache): void {
  const answer = makeAnswer(body, 'application/json', cacheSeconds, true);
  cache?.set(res.req.originalUrl, answer);
  writeAnswer(res.req, res, answer);
}

/** Errors are plain text with a newline and are never cached. */
export function sendError(res: http.ServerResponse, err: HttpError): void {
  if (res.headersSent) { res.destroy(); return; }
  const body = Buffer.from(`${err.text}\n`, 'utf8');
  res.statusCode = err.status;
  for (const h of ['Content-Encoding', 'Content-Range', 'Last-Modified', 'Accept-Ranges', 'ETag']) res.removeHeader(h);
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'max-age=0, private, no-store');
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.setHeader('Content-Length', body.length);
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
