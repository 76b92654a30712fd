/** Reading zips in tests: entry names (and contents) from a buffer. */
import yauzl from 'yauzl';

export interface ZipEntryInfo { name: string; size: number; content?: Buffer }

export function readZip(buf: Buffer, withContent = false): Promise<ZipEntryInfo[]> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true, strictFileNames: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) { reject(err ?? new Error('cannot open zip')); return; }
      const out: ZipEntryInfo[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        const info: ZipEntryInfo = { name: e.fileName, size: e.uncompressedSize };
        out.push(info);
        if (!withContent || e.fileName.endsWith('/')) { zip.readEntry(); return; }
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) { reject(err2); return; }
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => { info.content = Buffer.concat(chunks); zip.readEntry(); });
          stream.on('error', reject);
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** Entries of a .tar.gz, in order, with their contents. */
export async function readTarGz(buf: Buffer): Promise<Array<{ name: string; type: string; content: Buffer; mode?: number; mtime?: Date }>> {
  const { gunzipSync } = await import('node:zlib');
  const tar = await import('tar-stream');
  const out: Array<{ name: string; type: string; content: Buffer; mode?: number; mtime?: Date }> = [];
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => { out.push({ name: header.name, type: String(header.type), content: Buffer.concat(chunks), mode: header.mode, mtime: header.mtime }); next(); });
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  extract.end(gunzipSync(buf));
  await done;
  return out;
}
