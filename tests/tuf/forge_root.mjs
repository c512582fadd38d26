// forge_root.mjs - write root N+1 into a copy of a repository's metadata
// that hands the root role to a fresh key and is signed by that key only
// (not by a threshold of root N's keys). A TUF client must reject it.
//   node forge_root.mjs METADATA_DIR
import { generateKeyPairSync, createHash, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// OLPC canonical JSON: sorted keys, no whitespace, only " and \ escaped.
function canon(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') { if (!Number.isInteger(v)) throw new Error('float'); return String(v); }
  if (typeof v === 'string') return '"' + v.replace(/[\\"]/g, (c) => '\\' + c) + '"';
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  return '{' + Object.keys(v).sort().map((k) => canon(k) + ':' + canon(v[k])).join(',') + '}';
}

const dir = process.argv[2];
const cur = JSON.parse(readFileSync(join(dir, 'root.json')));
const n = cur.signed.version;
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const key = { keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256',
  keyval: { public: publicKey.export({ type: 'spki', format: 'pem' }) } };
const keyid = createHash('sha256').update(canon(key)).digest('hex');
const signed = structuredClone(cur.signed);
signed.version = n + 1;
signed.keys[keyid] = key;
signed.roles.root = { keyids: [keyid], threshold: 1 };
const sig = sign('sha256', Buffer.from(canon(signed)), privateKey).toString('hex');
const env = { signatures: [{ keyid, sig }], signed };
writeFileSync(join(dir, `${n + 1}.root.json`), JSON.stringify(env));
console.log(`forged ${n + 1}.root.json signed only by ${keyid}`);
