import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { BUNDLED_LAYERS, ConfigError, durationSeconds, loadConfig, parseConfigText } from '../../server/config.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

function problemsOf(text: string): string[] {
  try {
    parseConfigText(text, '/etc/epr/config.yml');
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config: parseConfigText', () => {
  after(cleanupTmp);

  it('reads package_paths (resolved against the file) and cache times', () => {
    const c = parseConfigText('package_paths:\n  - ./a\n  - /abs/b\ncache_time:\n  index: 1s\n  search: 2m\n  categories: 1h\n  catch_all: 90s\n', '/etc/epr/config.yml');
    expect(c.packagePaths).to.deep.equal(['/etc/epr/a', '/abs/b']);
    expect(c.cacheTime).to.deep.equal({ index: 1, search: 120, categories: 3600, catchAll: 90 });
    expect(c.source).to.equal('/etc/epr/config.yml');
  });

  it('defaults: 10s for the index, 10m for the rest, the bundled layers as paths', () => {
    const c = parseConfigText('{}', '/x/config.yml');
    expect(c.cacheTime).to.deep.equal({ index: 10, search: 600, categories: 600, catchAll: 600 });
    expect(c.packagePaths).to.deep.equal(BUNDLED_LAYERS);
    expect(BUNDLED_LAYERS.map((p) => path.basename(p))).to.deep.equal(['production', 'staging', 'snapshot']);
  });

  it('an empty file is the defaults', () => {
    expect(parseConfigText('', '/x/config.yml').cacheTime.index).to.equal(10);
  });

  it('accepts dotted keys (cache_time.search) and keeps the other defaults', () => {
    const c = parseConfigText('package_paths: [/p]\ncache_time.search: 5s\n', '/x/config.yml');
    expect(c.cacheTime).to.deep.equal({ index: 10, search: 5, categories: 600, catchAll: 600 });
  });

  it('rejects an invalid file listing EVERY problem with its key and line', () => {
    const text = [
      'package_paths: /not/a/list', // 1
      'cache_time:', // 2
      '  index: ten seconds', // 3
      '  search: 10m', // 4
      '  catch_all: 5', // 5
      '  bogus: 1s', // 6
      'unknown_top: true', // 7
      '',
    ].join('\n');
    const problems = problemsOf(text);
    expect(problems).to.have.length(5);
    expect(problems).to.include('package_paths (line 1): must be array');
    expect(problems).to.include('cache_time.index (line 3): must be a duration such as 10s, 5m or 1h');
    expect(problems).to.include('cache_time.catch_all (line 5): must be string');
    expect(problems).to.include('cache_time.bogus (line 6): unknown key');
    expect(problems).to.include('unknown_top (line 7): unknown key');
  });

  it('the error message names the file and counts the problems', () => {
    try {
      parseConfigText('a: 1\nb: 2\n', '/etc/epr/config.yml');
      expect.fail('expected a ConfigError');
    } catch (err) {
      expect((err as Error).message).to.equal('/etc/epr/config.yml: 2 problems:\n  - a (line 1): unknown key\n  - b (line 2): unknown key');
    }
  });

  it('reports the line of a problem written with a dotted key', () => {
    expect(problemsOf('package_paths: [/p]\ncache_time.index: soon\n')).to.deep.equal(['cache_time.index (line 2): must be a duration such as 10s, 5m or 1h']);
  });

  it('an empty package_paths list and an empty path are problems', () => {
    expect(problemsOf('package_paths: []\n')).to.deep.equal(['package_paths (line 1): must NOT have fewer than 1 items']);
    expect(problemsOf('package_paths:\n  - ""\n')).to.deep.equal(['package_paths[0] (line 1): must NOT have fewer than 1 characters']);
  });

  // BUG: YAML syntax errors are reported as "line ?": config.ts parses with prettyErrors: false, so
  // e.linePos is never set; the line must come from the LineCounter (lc.linePos(e.pos[0]).line).
  it('invalid YAML is one problem with its line', () => {
    const problems = problemsOf('package_paths:\n  - a\n bad: [\n');
    expect(problems).to.have.length.greaterThan(0);
    expect(problems[0]).to.match(/^line 3: invalid YAML: /);
  });

  it('loadConfig: an explicit file that does not exist is an error', () => {
    expect(() => loadConfig('/nonexistent/config.yml', true)).to.throw(ConfigError, 'file not found');
  });

  it('loadConfig: the implicit config.yml may be absent (bundled layers)', () => {
    const c = loadConfig(path.join(tmpDir(), 'config.yml'), false);
    expect(c.packagePaths).to.deep.equal(BUNDLED_LAYERS);
    expect(c.source).to.match(/built-in defaults/);
  });

  it('loadConfig reads the file', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'config.yml'), 'package_paths: [pkgs]\n');
    expect(loadConfig(path.join(dir, 'config.yml'), true).packagePaths).to.deep.equal([path.join(dir, 'pkgs')]);
  });
});

describe('config: durationSeconds', () => {
  const cases: Array<[string, number]> = [['10s', 10], ['10m', 600], ['1h', 3600], ['1m30s', 90], ['1h2m3s', 3723], ['500ms', 0], ['1500ms', 1], ['2.5s', 2], ['0s', 0], ['90s', 90], ['1000000us', 1]];
  for (const [d, s] of cases) it(`${d} = ${s}s`, () => expect(durationSeconds(d)).to.equal(s));
});
