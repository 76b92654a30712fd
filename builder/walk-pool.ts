import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { SourceError, walkFiles, type PackageFile } from '../server/packages/source.js';

/**
 * Walks many package folders (names, sizes and times of every file) on every
 * core: a walk is nothing but readdir and stat calls, and a layer of 100,000
 * files spends seconds in them. The folders are shared out between this
 * thread and worker threads; results come back in the input order.
 */

type Walked = PackageFile[] | SourceError;
type Wire = Array<{ files: Array<[string, number, number]> } | { error: string; file?: string }>;

function walkSome(dirs: string[]): Wire {
  return dirs.map((d) => {
    try {
      return { files: walkFiles(d).map((f): [string, number, number] => [f.path, f.size, f.mtime?.getTime() ?? 0]) };
    } catch (err) {
      return { error: (err as Error).message, file: (err as SourceError).file };
    }
  });
}

function fromWire(w: Wire[number]): Walked {
  if ('error' in w) return new SourceError(w.error, w.file);
  return w.files.map(([p, size, ms]) => ({ path: p, size, mtime: new Date(ms) }));
}

/** Below this many folders a worker costs more than it saves. */
const MIN_PER_WORKER = 64;

export async function walkFolders(dirs: string[]): Promise<Walked[]> {
  const workers = Math.min(os.availableParallelism() - 1, Math.floor(dirs.length / MIN_PER_WORKER));
  if (workers <= 0) return walkSome(dirs).map(fromWire);
  const share = Math.ceil(dirs.length / (workers + 1));
  const parts = Array.from({ length: workers + 1 }, (_, i) => dirs.slice(i * share, (i + 1) * share));
  const remote = parts.slice(1).map((part) => new Promise<Wire>((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: part });
    w.once('message', (m: Wire) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`folder walk worker exited with code ${code}`)); });
  }));
  const local = walkSome(parts[0]);
  return [local, ...await Promise.all(remote)].flat().map(fromWire);
}

if (!isMainThread && parentPort && Array.isArray(workerData)) parentPort.postMessage(walkSome(workerData as string[]));
