// walk.mjs - a real TUF client (tuf-js) against a published repository.
// Starts from a trusted root (normally 1.root.json), refreshes, optionally
// downloads a target and checks its SHA-256. Exit 0 on success; with
// --expect-fail REGEX, exit 0 only if the refresh is rejected with an error
// matching REGEX.
//   node walk.mjs --url http://127.0.0.1:P/ci --root FILE [--target NAME
//        --sha256 HEX] [--root-version N] [--expect-fail REGEX]
//        [--clock-offset SECONDS] [--state DIR]
// --state DIR keeps the client's trusted metadata in DIR from one run to the
// next, as a device does (the --root file seeds it only when DIR is new).
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Updater } from 'tuf-js';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

if (args['clock-offset']) {
  // Pretend the client runs later: its expiry checks use new Date().
  const offset = Number(args['clock-offset']) * 1000;
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...a) { if (a.length === 0) super(RealDate.now() + offset); else super(...a); }
    static now() { return RealDate.now() + offset; }
  };
}

const dir = args.state || mkdtempSync(join(tmpdir(), 'tufjs-'));
const metadataDir = join(dir, 'metadata');
const targetDir = join(dir, 'targets');

async function main() {
  const fs = await import('node:fs');
  fs.mkdirSync(metadataDir, { recursive: true });
  fs.mkdirSync(targetDir, { recursive: true });
  if (!args.state || !existsSync(join(metadataDir, 'root.json')))
    copyFileSync(args.root, join(metadataDir, 'root.json'));
  const updater = new Updater({
    metadataBaseUrl: `${args.url}/metadata`,
    targetBaseUrl: `${args.url}/targets`,
    metadataDir,
    targetDir,
  });
  await updater.refresh();
  const root = JSON.parse(readFileSync(join(metadataDir, 'root.json')));
  console.log(`refreshed: trusted root version ${root.signed.version}`);
  if (args['root-version'] && root.signed.version !== Number(args['root-version']))
    throw new Error(`expected root version ${args['root-version']}, got ${root.signed.version}`);
  if (args.target) {
    const info = await updater.getTargetInfo(args.target);
    if (!info) throw new Error(`no target ${args.target}`);
    const path = await updater.downloadTarget(info, join(targetDir, 'out'));
    const got = createHash('sha256').update(readFileSync(path)).digest('hex');
    if (args.sha256 && got !== args.sha256) throw new Error(`target hash ${got} != ${args.sha256}`);
    console.log(`downloaded ${args.target} sha256 ${got}`);
  }
}

function done() { if (!args.state) rmSync(dir, { recursive: true, force: true }); }

main().then(() => {
  done();
  if (args['expect-fail']) {
    console.error(`FAIL: expected a rejection matching ${args['expect-fail']}`);
    process.exit(1);
  }
  process.exit(0);
}, (e) => {
  done();
  // tuf-js errors keep name "Error": their class says which check refused.
  const msg = `${e.constructor?.name || e.name}: ${e.message}`;
  if (args['expect-fail'] && new RegExp(args['expect-fail']).test(msg)) {
    console.log(`rejected as expected: ${msg}`);
    process.exit(0);
  }
  console.error(`tuf-js: ${msg}`);
  process.exit(1);
});
