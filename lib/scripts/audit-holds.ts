// Typed boundary of lua/auditHolds-2.lua: one chunk of the reconciler's reserved audit.
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type AuditHoldsResult =
  | { readonly kind: 'more'; readonly summed: number }
  | { readonly kind: 'finished'; readonly reservedBefore: number; readonly drift: number }
  | { readonly kind: 'taken-over' }
  | { readonly kind: 'abandoned' };

export interface AuditHolds {
  readonly sku: string;
  readonly auditId: string;
  readonly step: 'start' | 'next';
  readonly chunkMax: number;
  readonly tieMax: number;
  readonly correct: boolean;
}

export async function auditHolds(scripts: ScriptRunner, keys: RedisKeys, request: AuditHolds): Promise<AuditHoldsResult> {
  const reply = await scripts.run('auditHolds', [keys.skuState(request.sku), keys.skuHolds(request.sku)], [request.auditId, request.step, request.chunkMax, request.tieMax, request.correct ? '1' : '0']);
  switch (reply[0]) {
    case 1: return { kind: 'more', summed: Number(reply[1]) };
    case 2: return { kind: 'finished', reservedBefore: Number(reply[1]), drift: Number(reply[2]) };
    case -1: return { kind: 'taken-over' };
    default: return { kind: 'abandoned' };
  }
}
