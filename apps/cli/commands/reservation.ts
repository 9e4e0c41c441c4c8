// `stockhold reservation show <id>`: one reservation, its status and lines (fulfillment and admin
// keys see every reservation; a checkout key only its own).
import type { Command } from 'commander';
import { renderPairs, renderTable } from '../output';
import type { CommandContext } from '../context';

export interface ReservationView {
  readonly id: string;
  readonly status: string;
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>;
  readonly customerId?: string;
  readonly expiresAt: string;
  readonly createdAt: string;
  readonly confirmedAt?: string;
  readonly cancelRequested?: boolean;
}

export function registerReservation(program: Command, context: CommandContext): void {
  const reservation = program.command('reservation').description('look at reservations');
  reservation
    .command('show')
    .description('status, lines and times of one reservation')
    .argument('<id>', 'reservation id')
    .action(async (id: string) => {
      const client = context.client();
      const { body } = await client.typed(client.api.GET('/v1/reservations/{id}', { params: { path: { id } } }));
      const printer = context.printer;
      if (printer.json) {
        printer.document(body);
        return;
      }
      const pairs: Array<readonly [string, unknown]> = [
        ['id', body.id],
        ['status', body.cancelRequested === true ? `${body.status} (cancel requested)` : body.status],
        ['customerId', body.customerId],
        ['createdAt', body.createdAt],
        ['expiresAt', body.expiresAt],
        ['confirmedAt', body.confirmedAt],
      ];
      printer.text(`${renderPairs(pairs)}\n`);
      printer.text(renderTable([{ header: 'sku' }, { header: 'quantity', align: 'right' }], body.lines.map((line) => [line.sku, String(line.quantity)])));
    });
}
