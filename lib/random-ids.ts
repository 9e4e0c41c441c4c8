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

/** Bytes of a reservation id that carry its creation time (milliseconds, big-endian). */
export const idTimeBytes = 6;

/**
 * A reservation id: the creation time in its first 48 bits, then 80 random bits (still
 * unguessable; it reveals when the reservation was made, which its owner may see anyway). The
 * time lets a hold reclaimed long after, by a script that sees only "<id>:<quantity>", be
 * measured for how long it lived without storing anything more per hold.
 */
export function reservationIdAt(nowMs: number): string {
  if (offset + idBytes > poolBytes) {
    randomFillSync(pool);
    offset = 0;
  }
  pool.writeUIntBE(Math.max(0, Math.min(nowMs, 2 ** 48 - 1)), offset, idTimeBytes);
  const id = pool.toString('base64url', offset, offset + idBytes);
  offset += idBytes;
  return id;
}

/** The creation time a reservation id carries (garbage for ids made before ids carried it). */
export function createdAtOfReservationId(id: string): number {
  return Buffer.from(id.slice(0, 8), 'base64url').readUIntBE(0, idTimeBytes);
}
