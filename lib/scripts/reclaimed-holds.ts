// The report a reclaiming script appends to its reply (withReclaimed in lua/includes/holds.lua):
// every expired hold it gave back, with when it expired and when it came back.
import { createdAtOfReservationId } from '../random-ids';

export interface ReclaimedHold {
  readonly reservationId: string;
  readonly quantity: number;
  readonly expiresAtMs: number;
  /** Redis time of the reclaim. */
  readonly reclaimedAtMs: number;
  /** From the id; undefined for an id that does not carry a plausible one (made before ids did). */
  readonly createdAtMs: number | undefined;
}

/** The longest hold TTL (HOLD_TTL max): a creation time further back than this is not one. */
const holdLifetimeMaxMs = 86_400_000;
/** Clock difference allowed between the API that made the id and Redis that set the expiry. */
const clockSlackMs = 60_000;

/**
 * Takes the reclaim report off the end of a reply (it is the only nested array a reclaiming
 * script's reply can end with), leaving the reply as it would be without it.
 */
export function takeReclaimed(reply: unknown[]): ReclaimedHold[] {
  const last = reply[reply.length - 1];
  if (!Array.isArray(last)) return [];
  reply.pop();
  const reclaimedAtMs = Number(last[0]);
  const holds: ReclaimedHold[] = [];
  for (let index = 1; index + 1 < last.length; index += 2) {
    const member = String(last[index]);
    const separator = member.lastIndexOf(':');
    const reservationId = member.slice(0, separator);
    const expiresAtMs = Number(last[index + 1]);
    const createdAtMs = createdAtOfReservationId(reservationId);
    const plausible = createdAtMs <= expiresAtMs + clockSlackMs && expiresAtMs - createdAtMs <= holdLifetimeMaxMs + clockSlackMs;
    holds.push({ reservationId, quantity: Number(member.slice(separator + 1)), expiresAtMs, reclaimedAtMs, createdAtMs: plausible ? createdAtMs : undefined });
  }
  return holds;
}
