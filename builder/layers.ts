import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tarFs from 'tar-fs';
import type { Readable } from 'node:stream';

/**
 * Deterministic tars: the same files give the same bytes, whatever the
 * timestamps, owners, umask or directory order on the machine that wrote
 * them. Docker keeps the tar's metadata when it ADDs it, so identical layer
 * tars become identical image layers (same diff ID) in every distribution.
 */

export const FIXED_MTIME = new Date('2020-01-01T00:00:00Z');

/**
 * A tar stream of `entries` (paths relative to `root`, folders included
 * explicitly) in the given order. Folders are not walked: only what is listed
 * goes in.
 */
export function deterministicTar(root: string, entries: string[]): Readable {
  return tarFs.pack(root, {
    entries,
    dereference: true,
    // explicit entries only: never descend into a listed folder
    ignore: () => true,
    map: (h) => ({
      name: h.name,
      type: h.type,
      size: h.type === 'file' ? h.size : 0,
      mode: h.type === 'directory' ? 0o755 : 0o644,
      mtime: FIXED_MTIME,
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
    }) as typeof h,
  }) as unknown as Readable;
}

/** Writes a deterministic tar of `entries` to `file`. */
export async function writeDeterministicTar(root: string, entries: string[], file: string): Promise<void> {
  await pipeline(deterministicTar(root, entries), fs.createWriteStream(file));
}
