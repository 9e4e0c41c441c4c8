// Typed boundaries of lua/finishCommit-1.lua and lua/finishCancel-1.lua: the fenced record step
// after a commit's or cancel's entries were applied to every SKU.
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type FinishResult = { readonly kind: 'finished' } | { readonly kind: 'unchanged'; readonly status: string };

export async function finishReservation(scripts: ScriptRunner, keys: RedisKeys, step: 'commit' | 'cancel', reservationId: string, fence: number, retentionMs: number): Promise<FinishResult> {
  const reply = await scripts.run(step === 'commit' ? 'finishCommit' : 'finishCancel', [keys.reservation(reservationId)], [reservationId, fence, retentionMs]);
  return reply[0] === 1 ? { kind: 'finished' } : { kind: 'unchanged', status: String(reply[1]) };
}
