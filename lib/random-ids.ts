// Unguessable ids without a system call per id: random bytes are drawn from the kernel a pool
// at a time and handed out 16 at a time (128 bits, base64url: 22 characters).
import { randomFillSync } from 'node:crypto';

export const idBytes = 16;
export const poolBytes = 16 * 1024;

const pool = Buffer.allocUnsafe(poolBytes);
let offset = poolBytes;

export function randomId(): string {
  if (offset + idBytes > poolBytes) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString('base64url', offset, offset + idBytes);
  offset += idBytes;
  return id;
}
