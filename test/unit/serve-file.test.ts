import { expect } from 'chai';
import { parseRange } from '../../server/http/serve-file.js';

describe('serve-file: parseRange', () => {
  it('no header: the whole file', () => expect(parseRange(undefined, 100)).to.equal(undefined));
  it('bytes=0-9', () => expect(parseRange('bytes=0-9', 100)).to.deep.equal({ start: 0, end: 9 }));
  it('bytes=10- runs to the end', () => expect(parseRange('bytes=10-', 100)).to.deep.equal({ start: 10, end: 99 }));
  it('bytes=-10 is the last 10 bytes', () => expect(parseRange('bytes=-10', 100)).to.deep.equal({ start: 90, end: 99 }));
  it('a suffix longer than the file is the whole file', () => expect(parseRange('bytes=-500', 100)).to.deep.equal({ start: 0, end: 99 }));
  it('an end past the file is cut to the last byte', () => expect(parseRange('bytes=50-1000', 100)).to.deep.equal({ start: 50, end: 99 }));
  it('a single byte', () => expect(parseRange('bytes=99-99', 100)).to.deep.equal({ start: 99, end: 99 }));
  it('surrounding whitespace is tolerated', () => expect(parseRange(' bytes=1-2 ', 100)).to.deep.equal({ start: 1, end: 2 }));
  it('a start at or past the end is unsatisfiable', () => {
    expect(parseRange('bytes=100-', 100)).to.equal('unsatisfiable');
    expect(parseRange('bytes=200-300', 100)).to.equal('unsatisfiable');
  });
  it('bytes=-0 is unsatisfiable', () => expect(parseRange('bytes=-0', 100)).to.equal('unsatisfiable'));
  for (const h of ['bytes=0-1,5-6', 'bytes=-', 'items=0-1', 'bytes=a-b', 'bytes 0-1', 'bytes=5-1', '']) {
    it(`"${h}" means the whole file`, () => expect(parseRange(h, 100)).to.equal(undefined));
  }
});
