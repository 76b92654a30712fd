import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envName, FLAGS } from '../../server/flags.js';

/** dist/test/unit -> the project root */
const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'README.md');

/** The cells of each table row of the README, by the flag in its first cell. */
function flagRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`--([a-z0-9-]+)`\s*\|/.exec(line);
    if (!m) continue;
    rows.set(m[1], line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

describe('README: the flag table matches the code', () => {
  it('README.md exists', () => expect(fs.existsSync(README), README).to.equal(true));

  it('every flag has a row with its environment variable and default', function () {
    if (!fs.existsSync(README)) this.skip();
    const rows = flagRows(fs.readFileSync(README, 'utf8'));
    for (const f of FLAGS) {
      const row = rows.get(f.name);
      expect(row, `a row for --${f.name}`).to.not.equal(undefined);
      const [, env, def] = row!;
      if (f.cliOnly) expect(env, `--${f.name} env`).to.match(/command line only/);
      else expect(env, `--${f.name} env`).to.equal(`\`${envName(f.name)}\``);
      // an empty default is written "(none)"
      expect(def, `--${f.name} default`).to.equal(f.default === '' ? '(none)' : `\`${String(f.default)}\``);
    }
  });

  it('the table lists no flag the code does not have', function () {
    if (!fs.existsSync(README)) this.skip();
    const known = new Set(FLAGS.map((f) => f.name));
    expect([...flagRows(fs.readFileSync(README, 'utf8')).keys()].filter((n) => !known.has(n))).to.deep.equal([]);
  });
});
