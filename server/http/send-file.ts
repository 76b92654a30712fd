import fs from 'node:fs';
import type http from 'node:http';

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
  return new Promise((resolve, reject) => {
    let pos = start;
    let closed = false;
    const closeFd = () => {
      if (closed) return;
      closed = true;
      fs.close(fd, () => undefined);
    };
    let reading = false;
    res.once('close', () => { if (!reading) closeFd(); });
    const next = () => {
      if (res.destroyed) { closeFd(); resolve(); return; }
      if (pos > end) { closeFd(); res.end(); resolve(); return; }
      const buf = take();
      reading = true;
      fs.read(fd, buf, 0, Math.min(CHUNK, end - pos + 1), pos, (err, n) => {
        reading = false;
        if (err || n === 0) {
          give(buf);
          closeFd();
          const failure = err ?? new Error('file ended before its size');
          res.destroy(failure);
          reject(failure);
          return;
        }
        if (res.destroyed) { give(buf); closeFd(); resolve(); return; }
        pos += n;
        const chunk = n === buf.length ? buf : buf.subarray(0, n);
        if (pos > end) {
          // the last chunk: no more reads, the buffer is free once the answer is out
          closeFd();
          res.end(chunk, () => give(buf));
          resolve();
          return;
        }
        res.write(chunk, (werr) => {
          if (werr) { closeFd(); resolve(); return; } // the client went away: the buffer may still be referenced
          give(buf);
          next();
        });
      });
    };
    next();
  });
}
