import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { SourceError, ZipSource } from '../../server/packages/source.js';
import { ZipWriter } from '../../bench/zip-writer.js';

/** Files of every kind an entry can be: empty, stored, deflated, streamed (sizes in a data descriptor). */
const FILES: Record<string, Buffer> = {
  'manifest.yml': Buffer.from('name: p\nversion: 1.0.0\n'),
  'docs/README.md': Buffer.from('# P\n\n'.repeat(500)),
  'img/empty.png': Buffer.alloc(0),
  'img/noise.bin': Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)),
};

async function yazlZip(file: string): Promise<void> {
  const zip = new yazl.ZipFile();
  zip.addEmptyDirectory('p-1.0.0/');
  zip.addBuffer(FILES['manifest.yml'], 'p-1.0.0/manifest.yml', { compress: false });
  zip.addBuffer(FILES['docs/README.md'], 'p-1.0.0/docs/README.md');
  zip.addBuffer(FILES['img/empty.png'], 'p-1.0.0/img/empty.png');
  const { Readable } = await import('node:stream');
  zip.addReadStream(Readable.from([FILES['img/noise.bin']]), 'p-1.0.0/img/noise.bin');
  zip.end();
  await new Promise<void>((resolve, reject) => zip.outputStream.pipe(fs.createWriteStream(file)).on('close', resolve).on('error', reject));
}

async function streamed(source: ZipSource, rel: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await source.openStream(rel)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('ZipSource: entries read where the central directory says', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'epr-zipsource-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const maker of ['yazl (stored, deflated, streamed entries)', 'the bench corpus writer']) {
    it(`reads and streams every file of a zip made by ${maker}`, async () => {
      const file = path.join(dir, `${maker.length}.zip`);
      if (maker.startsWith('yazl')) await yazlZip(file);
      else fs.writeFileSync(file, new ZipWriter().zip('p-1.0.0', Object.entries(FILES)));
      const source = await ZipSource.open(file);
      expect(source.files().map((f) => f.path).sort()).to.deep.equal(Object.keys(FILES).sort());
      for (const [rel, bytes] of Object.entries(FILES)) {
        expect((await source.readFile(rel)).equals(bytes), rel).to.equal(true);
        expect((await streamed(source, rel)).equals(bytes), rel).to.equal(true);
      }
    });
  }

  it('lists what yauzl lists, zip comment or not (the central directory read in one piece)', async () => {
    for (const [i, comment] of ['', 'a comment after the central directory'].entries()) {
      const file = path.join(dir, `listed-${i}.zip`);
      const zip = new ZipWriter().zip('p-1.0.0', Object.entries(FILES));
      zip.writeUInt16LE(comment.length, zip.length - 2);
      fs.writeFileSync(file, Buffer.concat([zip, Buffer.from(comment)]));
      const source = await ZipSource.open(file);
      const listed = await new Promise<Array<{ path: string; size: number }>>((resolve, reject) => {
        yauzl.open(file, { lazyEntries: true }, (err, z) => {
          if (err || !z) { reject(err); return; }
          const out: Array<{ path: string; size: number }> = [];
          z.on('entry', (e: yauzl.Entry) => { if (!e.fileName.endsWith('/')) out.push({ path: e.fileName.slice(e.fileName.indexOf('/') + 1), size: e.uncompressedSize }); z.readEntry(); });
          z.on('end', () => { z.close(); resolve(out); });
          z.readEntry();
        });
      });
      expect(source.files().map((f) => ({ path: f.path, size: f.size }))).to.deep.equal(listed);
      expect(source.hasDirectoryEntries).to.equal(true);
      expect((await source.readFile('docs/README.md')).equals(FILES['docs/README.md'])).to.equal(true);
    }
  });

  it('a zip it cannot read in one piece is left to yauzl, with its errors', async () => {
    const file = path.join(dir, 'cut.zip');
    const zip = new ZipWriter().zip('p-1.0.0', Object.entries(FILES));
    fs.writeFileSync(file, zip.subarray(0, zip.length - 10));
    let failed: unknown;
    try { await ZipSource.open(file); } catch (err) { failed = err; }
    expect(failed).to.be.instanceOf(SourceError);
    expect(String(failed)).to.match(/cannot read zip cut\.zip/);
  });

  it('an entry that inflates to another size than the directory says is an error, read or streamed', async () => {
    const file = path.join(dir, 'lies.zip');
    const zip = new ZipWriter().zip('p-1.0.0', [['docs/README.md', FILES['docs/README.md']], ['manifest.yml', FILES['manifest.yml']]]);
    // the central directory entry of docs/README.md says 100 bytes fewer than it holds
    const cd = zip.indexOf(Buffer.from('p-1.0.0/docs/README.md'), zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), zip.length) - 200);
    const header = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), cd);
    zip.writeUInt32LE(zip.readUInt32LE(header + 24) - 100, header + 24);
    fs.writeFileSync(file, zip);
    const source = await ZipSource.open(file);
    let failed: unknown;
    try { await source.readFile('docs/README.md'); } catch (err) { failed = err; }
    expect(failed).to.be.instanceOf(SourceError);
    failed = undefined;
    try { await streamed(source, 'docs/README.md'); } catch (err) { failed = err; }
    expect(String(failed)).to.match(/longer than/);
    expect((await source.readFile('manifest.yml')).equals(FILES['manifest.yml'])).to.equal(true);
  });
});
