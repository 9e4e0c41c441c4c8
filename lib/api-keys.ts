// API keys: `clientId:scope[+scope]:secret`, comma-separated. Secrets are kept only as SHA-256
// digests and compared in constant time against every configured key, so neither the position
// of a match nor the length of a secret shows in the response time.
import { hash, timingSafeEqual } from 'node:crypto';

export const SCOPES = ['checkout', 'fulfillment', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  readonly clientId: string;
  readonly scopes: ReadonlySet<Scope>;
  readonly secretDigest: Buffer;
}

export interface Client {
  readonly clientId: string;
  readonly scopes: ReadonlySet<Scope>;
}

const clientIdPattern = /^[A-Za-z0-9._-]{1,64}$/;
const secretLengthMin = 8;
const secretLengthMax = 256;
export const apiKeysMax = 1000;

function digest(secret: string): Buffer {
  // The one-shot hash: no Hash object per request (it showed in the hot path's profile).
  return hash('sha256', secret, 'buffer');
}

export function parseApiKeys(raw: string): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) problems.push('no keys given');
  if (entries.length > apiKeysMax) problems.push(`at most ${apiKeysMax} keys`);
  const seenClients = new Set<string>();
  entries.slice(0, apiKeysMax).forEach((entry, index) => {
    const first = entry.indexOf(':');
    const second = entry.indexOf(':', first + 1);
    if (first < 0 || second < 0) {
      problems.push(`entry ${index + 1} is not clientId:scope[+scope]:secret`);
      return;
    }
    const clientId = entry.slice(0, first);
    const scopeList = entry.slice(first + 1, second).split('+');
    const secret = entry.slice(second + 1);
    if (!clientIdPattern.test(clientId)) problems.push(`entry ${index + 1}: client id must be 1-64 of A-Z a-z 0-9 . _ -`);
    if (seenClients.has(clientId)) problems.push(`entry ${index + 1}: client id "${clientId}" appears twice`);
    seenClients.add(clientId);
    const unknown = scopeList.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
    if (unknown.length > 0) problems.push(`entry ${index + 1}: unknown scope ${unknown.join(', ')} (known: ${SCOPES.join(', ')})`);
    if (secret.length < secretLengthMin || secret.length > secretLengthMax) {
      // Never echo the secret itself into a log or an error message.
      problems.push(`entry ${index + 1}: secret must be ${secretLengthMin}-${secretLengthMax} characters`);
    }
    keys.push({ clientId, scopes: new Set(scopeList as Scope[]), secretDigest: digest(secret) });
  });
  return { keys, problems };
}

/** Finds the client whose secret is `presented`, looking at every key so the time is the same. */
export function authenticate(keys: readonly ApiKey[], presented: string): Client | undefined {
  const presentedDigest = digest(presented);
  let found: ApiKey | undefined;
  for (const key of keys) {
    if (timingSafeEqual(key.secretDigest, presentedDigest) && found === undefined) found = key;
  }
  return found === undefined ? undefined : { clientId: found.clientId, scopes: found.scopes };
}
