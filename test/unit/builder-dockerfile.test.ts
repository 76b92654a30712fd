import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DockerfileError, parseDistributionDockerfile } from '../../builder/dockerfile.js';
import { PROJECT_ROOT } from '../helpers/server.js';

describe('builder: Dockerfile.distribution as the builder applies it', () => {
  it('the shipped file: FROM the package layers, one COPY into /package-registry/, the registry environment', () => {
    const d = parseDistributionDockerfile(fs.readFileSync(path.join(PROJECT_ROOT, 'Dockerfile.distribution'), 'utf8'));
    expect(d.copies).to.deep.equal([{ sources: ['config.yml', 'shadow-report.json', 'packages.json'], dest: '/package-registry/' }]);
    expect(d.env).to.deep.equal([['EPR_CONFIG', '/package-registry/config.yml'], ['EPR_DISABLE_PACKAGE_VALIDATION', 'true']]);
    expect(d.history.map((h) => h.emptyLayer)).to.deep.equal([false, true]);
  });

  it('reads continuations, quoted values and labels', () => {
    const d = parseDistributionDockerfile('ARG PACKAGE_LAYERS\nFROM ${PACKAGE_LAYERS}\n# a comment\nLABEL a=1 \\\n  b="two words"\nENV X=y\n');
    expect(d.labels).to.deep.equal([['a', '1'], ['b', 'two words']]);
    expect(d.env).to.deep.equal([['X', 'y']]);
  });

  it('refuses, naming the line, what it would not apply as docker build does', () => {
    const cases: Array<[string, RegExp]> = [
      ['FROM ${PACKAGE_LAYERS}\nRUN echo hi\n', /line 2: RUN is not applied by the builder/],
      ['FROM node:20\n', /line 1: FROM must be \$\{PACKAGE_LAYERS\}/],
      ['COPY a /x/\nFROM ${PACKAGE_LAYERS}\n', /line 1: COPY before FROM/],
      ['FROM ${PACKAGE_LAYERS}\nCOPY ../secret /x/\n', /line 2: COPY sources must be plain file names/],
      ['FROM ${PACKAGE_LAYERS}\nCOPY a /x\n', /line 2: COPY wants files of the context and an absolute folder ending with \//],
      ['FROM ${PACKAGE_LAYERS}\nENV A=$HOME\n', /line 2: ENV: the builder does not expand \$variables/],
      ['FROM ${PACKAGE_LAYERS}\nENV A\n', /line 2: ENV wants key=value pairs/],
      ['ARG PACKAGE_LAYERS\n', /no FROM/],
    ];
    for (const [text, re] of cases) {
      expect(() => parseDistributionDockerfile(text), text).to.throw(DockerfileError, re);
    }
  });
});
