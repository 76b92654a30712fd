import fs from 'node:fs';

/**
 * Bytes [position, position + length) of `fd`, read until they are all there
 * (a read may return fewer) or the file ends: then the shorter buffer of what
 * there was, for the caller to say what that means.
 */
export function readUpTo(fd: number, length: number, position: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, out, got, length - got, position + got);
    if (n === 0) return out.subarray(0, got);
    got += n;
  }
  return out;
}
