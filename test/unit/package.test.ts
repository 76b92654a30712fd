import { expect } from 'chai';
import { assetOrder } from '../../server/packages/package.js';

describe('package: assetOrder', () => {
  it('lists files depth by depth, keeping the source order within a depth', () => {
    const walk = [
      'LICENSE.txt',
      'changelog.yml',
      'data_stream/logs/fields/base-fields.yml',
      'data_stream/logs/manifest.yml',
      'docs/README.md',
      'img/icon.svg',
      'kibana/dashboard/a.json',
      'manifest.yml',
    ];
    expect(assetOrder(walk)).to.deep.equal([
      'LICENSE.txt',
      'changelog.yml',
      'manifest.yml',
      'docs/README.md',
      'img/icon.svg',
      'data_stream/logs/manifest.yml',
      'kibana/dashboard/a.json',
      'data_stream/logs/fields/base-fields.yml',
    ]);
  });

  it('is stable: equal depths keep their input order even when unsorted', () => {
    expect(assetOrder(['z/b', 'a', 'z/a', 'b'])).to.deep.equal(['a', 'b', 'z/b', 'z/a']);
  });

  it('does not change its input and handles an empty list', () => {
    const input = ['a/b', 'c'];
    assetOrder(input);
    expect(input).to.deep.equal(['a/b', 'c']);
    expect(assetOrder([])).to.deep.equal([]);
  });
});
