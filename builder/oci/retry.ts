/**
 * Retrying registry operations: bounded exponential backoff for what a
 * registry or the network may get right on a second try (5xx, 429, a reset or
 * dropped connection, a stall), and nothing else. Every retry is one whole
 * operation again (a blob upload starts over from the blob's first byte), so
 * an operation never resumes on a half-known state.
 */

export interface RetryPolicy {
  /** tries in all, the first included */
  attempts: number;
  /** the first wait; each next one doubles */
  baseDelayMs: number;
  /** no single wait is longer (a Retry-After beyond it is cut to it) */
  maxDelayMs: number;
  /** no retry starts once this much time has gone since the first try */
  totalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 15_000, totalMs: 180_000 };

/** A failure worth another try; `retryAfterMs` is what the server asked for, when it did. */
export class TransientError extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

/** Retry-After as seconds or as an HTTP date, in milliseconds from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before retry number `retry` (1 for the first retry): doubling, with jitter so parallel uploads spread out. */
export function backoffDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxDelayMs);
  const exp = policy.baseDelayMs * 2 ** (retry - 1);
  return Math.min(policy.maxDelayMs, Math.round(exp * (0.75 + random() * 0.5)));
}

export interface RetryEvents {
  /** told before each wait, with the failure that caused it */
  onRetry?(error: TransientError, retry: number, delayMs: number): void;
}

/**
 * Runs `op` until it succeeds, fails with anything but a TransientError, or
 * the policy is spent; the last TransientError is then thrown as given by
 * `giveUp` (which turns it into the caller's own error with its context).
 */
export async function withRetry<T>(
  op: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  giveUp: (last: TransientError, attempts: number) => Error,
  events: RetryEvents = {},
): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      const delay = backoffDelay(attempt, policy, err.retryAfterMs);
      const outOfTime = Date.now() - started + delay > policy.totalMs;
      if (attempt >= policy.attempts || outOfTime) throw giveUp(err, attempt);
      events.onRetry?.(err, attempt, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
