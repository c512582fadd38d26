// verify.mjs - does a trusted root accept a piece of delegated metadata?
// tuf-js's own check (Metadata.verifyDelegate, what its updater runs on
// every timestamp, snapshot and targets file), for metadata a client cannot
// be made to reach through the updater (a snapshot behind a timestamp that
// does not name it). Exit 0 when accepted; with --expect-fail REGEX, exit 0
// only when refused with an error matching REGEX.
//   node verify.mjs --root ROOT.json --role snapshot --file N.snapshot.json
//        [--expect-fail REGEX]
import { readFileSync } from 'node:fs';
import { Metadata, MetadataKind } from '@tufjs/models';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const kinds = { root: MetadataKind.Root, targets: MetadataKind.Targets,
  snapshot: MetadataKind.Snapshot, timestamp: MetadataKind.Timestamp };

try {
  const root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(readFileSync(args.root)));
  const md = Metadata.fromJSON(kinds[args.role], JSON.parse(readFileSync(args.file)));
  root.verifyDelegate(args.role, md);
} catch (e) {
  // tuf-js errors keep name "Error": their class says which check refused.
  const msg = `${e.constructor?.name || e.name}: ${e.message}`;
  if (args['expect-fail'] && new RegExp(args['expect-fail']).test(msg)) {
    console.log(`rejected as expected: ${msg}`);
    process.exit(0);
  }
  console.error(`tuf-js: ${msg}`);
  process.exit(1);
}
if (args['expect-fail']) {
  console.error(`FAIL: ${args.file} accepted; expected a rejection matching ${args['expect-fail']}`);
  process.exit(1);
}
console.log(`accepted: ${args.file} as ${args.role}`);
