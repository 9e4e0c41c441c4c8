// Operator routes under /v1/admin (admin scope): failed jobs of each queue, and retrying them.
import { Router } from 'express';
import type { Stockhold } from '../../lib/stockhold';

export function adminRoutes(_stockhold: Stockhold): Router {
  const router = Router();
  return router;
}
