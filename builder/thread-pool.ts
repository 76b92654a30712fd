import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { loadTask, stampTask, walkTask, type LoadInput, type LoadResult, type WalkResult } from './package-tasks.js';

/**
 * Shares a list of independent jobs between this thread and worker threads,
 * one per other core. Walking package folders is all readdir and stat calls,
 * loading them all parsing, validation and hashing: a production layer spends
 * many seconds in each, on one core unless shared out. Results come back in
 * the input order.
 */

const TASKS = {
  walk: async (items: string[]): Promise<WalkResult[]> => items.map(walkTask),
  stamp: async (items: string[]): Promise<Array<string | undefined>> => items.map(stampTask),
  load: async (items: LoadInput[]): Promise<LoadResult[]> => {
    const out: LoadResult[] = [];
    for (const i of items) out.push(await loadTask(i));
    return out;
  },
};
type TaskName = keyof typeof TASKS;
type In<T extends TaskName> = Parameters<(typeof TASKS)[T]>[0][number];
type Out<T extends TaskName> = Awaited<ReturnType<(typeof TASKS)[T]>>[number];

/** Below this many jobs per thread a worker costs more than it saves. */
const MIN_PER_THREAD = 32;
/**
 * Threads per task beyond this one. Loading is CPU work: one per other core.
 * Walking mostly waits for the disk when the file system's metadata is not
 * cached (a layer not read for a while), and more walks in flight then finish
 * sooner than one per core.
 */
const walkThreads = () => Math.max(3, os.availableParallelism() - 1);
const EXTRA_THREADS: Record<TaskName, () => number> = {
  walk: walkThreads,
  stamp: walkThreads,
  load: () => os.availableParallelism() - 1,
};

/**
 * `background`: this thread takes no share, so that it stays free for other
 * work (streaming an image) while the workers run.
 */
export async function shareOut<T extends TaskName>(task: T, items: Array<In<T>>, opts: { background?: boolean } = {}): Promise<Array<Out<T>>> {
  const run = TASKS[task] as unknown as (x: Array<In<T>>) => Promise<Array<Out<T>>>;
  const local = opts.background ? 0 : 1;
  const workers = opts.background ? Math.max(1, EXTRA_THREADS[task]()) : Math.max(0, Math.min(EXTRA_THREADS[task](), Math.floor(items.length / MIN_PER_THREAD) - 1));
  if (workers === 0 || items.length === 0) return run(items);
  const share = Math.ceil(items.length / (workers + local));
  const parts = Array.from({ length: workers + local }, (_, i) => items.slice(i * share, (i + 1) * share));
  const remote = parts.slice(local).map((part) => new Promise<Array<Out<T>>>((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { task, items: part } });
    w.once('message', (m: Array<Out<T>>) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`${task} worker exited with code ${code}`)); });
  }));
  const mine = local ? await run(parts[0]) : [];
  return [mine, ...await Promise.all(remote)].flat();
}

if (!isMainThread && parentPort && workerData?.task in TASKS) {
  const { task, items } = workerData as { task: TaskName; items: never[] };
  void TASKS[task](items).then((r) => parentPort!.postMessage(r));
}
