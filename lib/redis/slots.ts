// Redis Cluster hash slots: a key's slot is CRC16 (XMODEM) of its hash tag (the text between the
// first "{" and the next "}", when not empty) or of the whole key, modulo 16384. A script may only
// touch keys of one slot per call on a cluster; `assertOneSlot` checks a call before it is sent.
import { assert } from '../errors';

export const slotCount = 16_384;

function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function slotOf(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return crc16(Buffer.from(key.slice(open + 1, close))) % slotCount;
  }
  return crc16(Buffer.from(key)) % slotCount;
}

/** Whether every key is in the same slot (true for no keys). */
export function inOneSlot(keys: readonly string[]): boolean {
  if (keys.length === 0) return true;
  const first = slotOf(keys[0] as string);
  return keys.every((key) => slotOf(key) === first);
}

/** A script call on a cluster: every key in one slot, or it is a bug in the caller, not Redis's CROSSSLOT. */
export function assertOneSlot(script: string, keys: readonly string[]): void {
  assert(inOneSlot(keys), `${script} would touch keys of several slots: ${keys.map((key) => `${key} (${slotOf(key)})`).join(', ')}`);
}
