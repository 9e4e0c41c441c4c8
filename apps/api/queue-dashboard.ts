// Bull Board at /admin/queues, for admin keys only (Bearer, or HTTP Basic for a browser).
import { Router } from 'express';
import type { Stockhold } from '../../lib/stockhold';

export const queueDashboardPath = '/admin/queues';

export function queueDashboard(_stockhold: Stockhold): Router {
  return Router();
}
