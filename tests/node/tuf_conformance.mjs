// Conformance check with an independent TUF client (tuf-js): load a depot
// repository over HTTP from a pinned root, refresh all metadata, download one
// target and print what was downloaded.
//
//   node tuf_conformance.mjs BASE_URL ROOT_JSON TARGET_PATH
//
// Prints one JSON line: {"ok":true,"target":...,"sha256":...,"length":...} and exits
// 0, or {"ok":false,"error":...,"name":...} and exits 1.
import { Updater } from 'tuf-js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [baseUrl, rootPath, targetPath] = process.argv.slice(2);
if (!baseUrl || !rootPath || !targetPath) {
  console.error('usage: node tuf_conformance.mjs BASE_URL ROOT_JSON TARGET_PATH');
  process.exit(2);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tufjs-'));
const targetDir = path.join(dir, 'targets');
fs.mkdirSync(targetDir);
fs.copyFileSync(rootPath, path.join(dir, 'root.json'));
try {
  const updater = new Updater({
    metadataDir: dir,
    metadataBaseUrl: `${baseUrl}/metadata`,
    targetDir,
    targetBaseUrl: `${baseUrl}/targets`,
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(targetPath);
  if (!info) throw new Error(`no target ${targetPath}`);
  const file = await updater.downloadTarget(info);
  const bytes = fs.readFileSync(file);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  console.log(JSON.stringify({ ok: true, target: targetPath, sha256, length: bytes.length }));
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e), name: e?.name ?? '' }));
  process.exit(1);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
