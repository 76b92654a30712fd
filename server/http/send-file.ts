import fs from 'node:fs';
import type http from 'node:http';
import type { BytePiece } from '../packages/zip-recipe.js';

/**
 * Writing a file's bytes to a response without a stream per request. A read
 * stream reads 64 kB at a time into new buffers; at a thousand 400 kB zips a
 * second that is half a gigabyte of garbage a second, and the process grows
 * by hundreds of megabytes before the collector catches up. Here each chunk
 * is read into a buffer from a small pool and the buffer goes back to the
 * pool once the socket has taken the bytes.
 */
const CHUNK = 256 * 1024;
const MAX_POOLED = 64;
const pool: Buffer[] = [];

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

function give(b: Buffer): void {
  if (pool.length < MAX_POOLED) pool.push(b);
}

/** Opens a file for reading (callbacks: the promise API costs more than the open itself). */
export function openFile(file: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

/**
 * Writes bytes [start, end] of the open file `fd` as the body of `res` (whose
 * head is set already) and ends it; `fd` is closed when done, on an error or
 * when the client goes away. Resolves when the last byte is handed to the
 * socket; rejects (after destroying the response) when the file cannot be read.
 */
export function sendFileBody(res: http.ServerResponse, fd: number, start: number, end: number): Promise<void> {
  return pump(res, fd, start, end, true).then(() => undefined);
}


/**
 * Writes the pieces, in order, as the body of `res` and ends it: buffers as
 * they are, file ranges read chunk by chunk into pooled buffers (one file open
 * at a time). Settles like sendFileBody; a file that cannot be opened after
 * the head is out destroys the response, as a failed read does.
 */
export async function sendPiecesBody(res: http.ServerResponse, pieces: BytePiece[]): Promise<void> {
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    const last = i === pieces.length - 1;
    if (res.destroyed) return;
    if (p.data) {
      if (last) { res.end(p.data); return; }
      if (!res.write(p.data)) await drained(res);
      continue;
    }
    if (p.to <= p.from) { if (last) res.end(); continue; }
    let fd: number;
    try {
      fd = await openFile(p.file);
    } catch (err) {
      res.destroy(err as Error);
      throw err;
    }
    if (!(await pump(res, fd, p.from, p.to - 1, last))) return;
  }
  if (pieces.length === 0) res.end();
}

/** Resolves once `res` takes more bytes, or has gone away. */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Bytes [start, end] of `fd` written to `res`, then `res` ended when `last`;
 * `fd` is closed in every case. Resolves true when every byte was handed to
 * the socket, false when the client went away first.
 */
function pump(res: http.ServerResponse, fd: number, start: number, end: number, last: boolean): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let pos = start;
    let closed = false;
    const closeFd = () => {
      if (closed) return;
      closed = true;
      fs.close(fd, () => undefined);
    };
    let reading = false;
    const onClose = () => { if (!reading) closeFd(); };
    res.once('close', onClose);
    const finish = (ok: boolean) => { res.off('close', onClose); closeFd(); resolve(ok); };
    const next = () => {
      if (res.destroyed) { finish(false); return; }
      if (pos > end) { if (last) res.end(); finish(true); return; }
      const buf = take();
      reading = true;
      fs.read(fd, buf, 0, Math.min(CHUNK, end - pos + 1), pos, (err, n) => {
        reading = false;
        if (err || n === 0) {
          give(buf);
          res.off('close', onClose);
          closeFd();
          const failure = err ?? new Error('file ended before its size');
          res.destroy(failure);
          reject(failure);
          return;
        }
        if (res.destroyed) { give(buf); finish(false); return; }
        pos += n;
        const chunk = n === buf.length ? buf : buf.subarray(0, n);
        if (pos > end && last) {
          // the last chunk: no more reads, the buffer is free once the answer is out
          res.end(chunk, () => give(buf));
          finish(true);
          return;
        }
        res.write(chunk, (werr) => {
          if (werr) { finish(false); return; } // the client went away: the buffer may still be referenced
          give(buf);
          next();
        });
      });
    };
    next();
  });
}
