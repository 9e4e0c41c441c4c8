// Typed boundary of lua/leaseRun-1.lua: the one-run-at-a-time reconcile lease.
import type { ScriptRunner } from '../redis/scripts';

export async function leaseRun(scripts: ScriptRunner, key: string, op: 'acquire' | 'renew' | 'release', token: string, leaseMs: number): Promise<boolean> {
  const reply = await scripts.run('leaseRun', [key], [op, token, leaseMs]);
  return reply[0] === 1;
}
