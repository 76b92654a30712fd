import { expect } from 'chai';
import { mergeFirstWins, type Candidate } from '../../server/packages/precedence.js';

interface Item extends Candidate { label: string }
const item = (key: string, kind: 'zip' | 'directory', label: string): Item => ({ key, kind, label });

describe('precedence: mergeFirstWins', () => {
  it('keeps every distinct name+version, in the order first seen', () => {
    const m = mergeFirstWins([[item('a-1.0.0', 'directory', 'A1')], [item('b-1.0.0', 'directory', 'B1'), item('a-2.0.0', 'directory', 'A2')]]);
    expect(m.winners.map((w) => w.label)).to.deep.equal(['A1', 'B1', 'A2']);
    expect(m.shadowed).to.deep.equal([]);
  });

  it('the earlier layer wins between two directory packages', () => {
    const first = item('a-1.0.0', 'directory', 'first');
    const second = item('a-1.0.0', 'directory', 'second');
    const m = mergeFirstWins([[first], [second]]);
    expect(m.winners).to.deep.equal([first]);
    expect(m.winnerLayer.get(first)).to.equal(0);
    expect(m.shadowed).to.deep.equal([{ winner: first, hidden: second, winnerLayer: 0, hiddenLayer: 1 }]);
  });

  it('the earlier layer wins between two zip packages', () => {
    const first = item('a-1.0.0', 'zip', 'first');
    const second = item('a-1.0.0', 'zip', 'second');
    const m = mergeFirstWins([[first], [second]]);
    expect(m.winners).to.deep.equal([first]);
    expect(m.shadowed[0].hidden).to.equal(second);
  });

  it('a zip beats a directory package in a later layer', () => {
    const dir = item('a-1.0.0', 'directory', 'dir');
    const zip = item('a-1.0.0', 'zip', 'zip');
    const m = mergeFirstWins([[dir], [zip]]);
    expect(m.winners).to.deep.equal([zip]);
    expect(m.winnerLayer.get(zip)).to.equal(1);
    expect(m.shadowed).to.deep.equal([{ winner: zip, hidden: dir, winnerLayer: 1, hiddenLayer: 0 }]);
  });

  it('a zip beats a directory package in an earlier layer', () => {
    const dir = item('a-1.0.0', 'directory', 'dir');
    const zip = item('a-1.0.0', 'zip', 'zip');
    const m = mergeFirstWins([[zip], [dir]]);
    expect(m.winners).to.deep.equal([zip]);
    expect(m.shadowed).to.deep.equal([{ winner: zip, hidden: dir, winnerLayer: 0, hiddenLayer: 1 }]);
  });

  it('within one layer the first item wins too', () => {
    const a = item('a-1.0.0', 'directory', 'a');
    const b = item('a-1.0.0', 'directory', 'b');
    expect(mergeFirstWins([[a, b]]).winners).to.deep.equal([a]);
  });

  it('three layers: the first zip wins and both others are listed as shadowed', () => {
    const d0 = item('a-1.0.0', 'directory', 'd0');
    const z1 = item('a-1.0.0', 'zip', 'z1');
    const z2 = item('a-1.0.0', 'zip', 'z2');
    const m = mergeFirstWins([[d0], [z1], [z2]]);
    expect(m.winners).to.deep.equal([z1]);
    expect(m.shadowed.map((s) => [s.winner.label, s.hidden.label])).to.deep.equal([['z1', 'd0'], ['z1', 'z2']]);
  });

  it('no layers, or empty layers, give nothing', () => {
    expect(mergeFirstWins([]).winners).to.deep.equal([]);
    expect(mergeFirstWins([[], []]).winners).to.deep.equal([]);
  });
});
