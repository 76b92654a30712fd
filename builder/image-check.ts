import type Docker from 'dockerode';
import { containerLogs, EngineOperationError, removeContainer, withTimeout, TIMEOUTS } from './image.js';

/**
 * The build-time check of a distribution image: its own server is started
 * with no network, and must say it is ready with every package path read
 * from its baked index (none scanned, none stale) and with the number of
 * package versions the builder merged. Every package was validated by the
 * builder before the image was made (packages unchanged since an earlier
 * build by that build); this proves the image itself starts and serves them.
 */

const READY = /package registry ready on \S+ \((\d+) package versions/;
const CHECK_LIMIT_MS = 120_000;

interface LogLine { message?: string; 'log.level'?: string; 'file.path'?: string }

function parseLines(text: string): LogLine[] {
  return text.split('\n').filter((l) => l.trim()).map((l) => {
    try { return JSON.parse(l) as LogLine; } catch { return { message: l }; }
  });
}

export interface StartCheck { versions: number; millis: number }

export async function checkImageStarts(docker: Docker, image: string, expect: { versions: number; paths: number }): Promise<StartCheck> {
  const container = await withTimeout(docker.createContainer({
    Image: image,
    Env: ['EPR_LOG_LEVEL=info', 'EPR_LOG_TYPE=ecs'],
    HostConfig: { NetworkMode: 'none' },
    Labels: { 'org.elastic.package-registry.builder-check': 'true' },
  }), TIMEOUTS.quick, 'docker create');
  const started = Date.now();
  try {
    await withTimeout(container.start(), TIMEOUTS.quick, 'docker start');
    for (;;) {
      const lines = parseLines(await containerLogs(docker, container.id, 0));
      const scanned = lines.filter((l) => /package path scanned/.test(l.message ?? ''));
      if (scanned.length > 0) throw new EngineOperationError(`the image's server did not use its baked index: ${scanned.map((l) => `${l['file.path'] ?? ''} ${l.message}`).join('; ')}`);
      const ready = lines.map((l) => READY.exec(l.message ?? '')).find((m) => m);
      if (ready) {
        const versions = Number(ready[1]);
        const baked = lines.filter((l) => /read from its baked index/.test(l.message ?? '')).length;
        if (versions !== expect.versions) throw new EngineOperationError(`the image serves ${versions} package versions, the build merged ${expect.versions}`);
        if (baked !== expect.paths) throw new EngineOperationError(`the image read ${baked} of its ${expect.paths} package paths from their baked index`);
        return { versions, millis: Date.now() - started };
      }
      const state = (await withTimeout(container.inspect(), TIMEOUTS.quick, 'docker inspect')).State;
      if (!state.Running) {
        throw new EngineOperationError(`the image's server exited (code ${state.ExitCode}) before it was ready:\n${lines.slice(-15).map((l) => `  ${l.message ?? ''}`).join('\n')}`);
      }
      if (Date.now() - started > CHECK_LIMIT_MS) throw new EngineOperationError(`the image's server was not ready within ${CHECK_LIMIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await removeContainer(docker, container.id);
  }
}
