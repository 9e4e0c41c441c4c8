// lua/createReservation-n.lua takes a batch of reservations; the tests that call it directly send
// one at a time, as a batch of one, and see its reply (or its error) as the one call's.
import type { ScriptReply, ScriptRunner } from '../../lib/redis/scripts';

export async function createOne(scripts: ScriptRunner, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<ScriptReply> {
  const replies = await scripts.run('createReservation', keys, [1, keys.length, ...args]);
  const reply = replies[0] as unknown as ScriptReply;
  if (reply[0] === -100) throw new Error(String(reply[1]));
  return reply;
}
