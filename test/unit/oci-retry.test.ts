import { expect } from 'chai';
import { TransientError, backoffDelay, parseRetryAfter, withRetry, type RetryPolicy } from '../../builder/oci/retry.js';

const quick: RetryPolicy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5, totalMs: 10_000 };

describe('registry retries', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('3')).to.equal(3000);
    expect(parseRetryAfter(['0'])).to.equal(0);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).to.equal(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).to.equal(0);
    expect(parseRetryAfter('soon')).to.equal(undefined);
    expect(parseRetryAfter(undefined)).to.equal(undefined);
  });

  it('doubles the wait with jitter, bounded, and takes what the server asked for up to the bound', () => {
    const policy: RetryPolicy = { attempts: 10, baseDelayMs: 100, maxDelayMs: 1_000, totalMs: 60_000 };
    expect(backoffDelay(1, policy, undefined, () => 0.5)).to.equal(100);
    expect(backoffDelay(3, policy, undefined, () => 0.5)).to.equal(400);
    expect(backoffDelay(3, policy, undefined, () => 0)).to.equal(300);
    expect(backoffDelay(3, policy, undefined, () => 1)).to.equal(500);
    expect(backoffDelay(8, policy, undefined, () => 0.5)).to.equal(1_000);
    expect(backoffDelay(1, policy, 700)).to.equal(700);
    expect(backoffDelay(1, policy, 30_000)).to.equal(1_000);
  });

  it('retries transient failures and nothing else', async () => {
    let n = 0;
    const retried: number[] = [];
    const v = await withRetry(
      async () => {
        if (++n < 3) throw new TransientError('503');
        return 'ok';
      },
      quick,
      (e) => e,
      { onRetry: (_e, i) => retried.push(i) },
    );
    expect([v, n, retried]).to.deep.equal(['ok', 3, [1, 2]]);

    n = 0;
    const hard = await withRetry(async () => {
      n++;
      throw new Error('400 bad');
    }, quick, (e) => e).catch((e: Error) => e);
    expect([hard.message, n]).to.deep.equal(['400 bad', 1]);
  });

  it('gives up after the attempts, or when the next wait would pass the total time', async () => {
    let n = 0;
    const spent = await withRetry(async () => {
      n++;
      throw new TransientError('reset');
    }, quick, (last, tries) => new Error(`gave up after ${tries}: ${last.message}`)).catch((e: Error) => e);
    expect([spent.message, n]).to.deep.equal(['gave up after 4: reset', 4]);

    n = 0;
    const late = await withRetry(async () => {
      n++;
      throw new TransientError('429', 60_000);
    }, { ...quick, maxDelayMs: 60_000, totalMs: 1_000 }, (_last, tries) => new Error(`gave up after ${tries}`)).catch((e: Error) => e);
    expect([late.message, n]).to.deep.equal(['gave up after 1', 1]);
  });
});
