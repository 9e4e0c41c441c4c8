// `stockhold stock get|set|adjust`: read a SKU, set its on-hand, or record a receipt or a
// shrinkage. Mutations carry an Idempotency-Key (random unless --idempotency-key names one) that
// is printed, so an operator whose command died half-way repeats it with the same key and the
// service answers the stored result instead of changing the stock twice.
import type { Command } from 'commander';
import { idempotencyKeyArgument, stockDelta, wholeNumber } from '../arguments';
import { newIdempotencyKey, type ServiceAnswer } from '../http-client';
import { renderTable, type Column } from '../output';
import type { CommandContext } from '../context';

export interface SkuView {
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
  /** A striped SKU's stripe count; its figures are the stripes' sums. */
  readonly stripes?: number;
  /** Units one customer may hold across live reservations, when capped. */
  readonly perCustomerLimit?: number;
}

export const adjustmentReasonDefault = 'operator adjustment (stockhold CLI)';

const skuColumns: readonly Column[] = [{ header: 'sku' }, { header: 'onHand', align: 'right' }, { header: 'reserved', align: 'right' }, { header: 'available', align: 'right' }];

/** The SKU as a table; a striped SKU's with its stripe count, a capped one's with its cap. */
function skuTable(view: SkuView): string {
  const columns: Column[] = [...skuColumns];
  const row = [view.sku, String(view.onHand), String(view.reserved), String(view.available)];
  if (view.stripes !== undefined) {
    columns.push({ header: 'stripes', align: 'right' });
    row.push(String(view.stripes));
  }
  if (view.perCustomerLimit !== undefined) {
    columns.push({ header: 'perCustomerLimit', align: 'right' });
    row.push(String(view.perCustomerLimit));
  }
  return renderTable(columns, [row]);
}

function printSku(context: CommandContext, view: SkuView): void {
  const printer = context.printer;
  if (printer.json) printer.document(view);
  else printer.text(skuTable(view));
}

function printMutation(context: CommandContext, answer: ServiceAnswer<SkuView>, idempotencyKey: string): void {
  const printer = context.printer;
  if (printer.json) {
    printer.document({ ...answer.body, idempotencyKey, replayed: answer.replayed });
    return;
  }
  printer.text(skuTable(answer.body));
  printer.text(`Idempotency-Key: ${idempotencyKey}`);
  if (answer.replayed) printer.text('replayed: the service had made this change already and answered its stored result; nothing changed again');
  else printer.note(`to retry this exact change safely, repeat the command with --idempotency-key ${idempotencyKey}`);
}

export function registerStock(program: Command, context: CommandContext): void {
  const stock = program.command('stock').description("read and change a SKU's stock (set and adjust need an admin key)");

  stock
    .command('get')
    .description('on-hand, reserved and available units of a SKU')
    .argument('<sku>', 'SKU id')
    .action(async (sku: string) => {
      const client = context.client();
      const answer = await client.typed(client.api.GET('/v1/skus/{sku}', { params: { path: { sku } } }));
      printSku(context, answer.body);
    });

  stock
    .command('set')
    .description('set the on-hand units (creates the SKU); the difference is a ledger adjustment')
    .argument('<sku>', 'SKU id')
    .argument('<onHand>', 'units on hand', wholeNumber(0, Number.MAX_SAFE_INTEGER))
    .option('--idempotency-key <key>', 'repeat an earlier change with the key it printed', idempotencyKeyArgument)
    .option('--stripes <k>', 'split a hot SKU over k stripes (1-64), each in its own Redis hash slot', wholeNumber(1, 64))
    .option('--per-customer-limit <n>', 'cap the units one customer may hold across live reservations (1-1000)', wholeNumber(1, 1000))
    .option('--no-per-customer-limit', 'remove the cap')
    .action(async (sku: string, onHand: number, options: { idempotencyKey?: string; stripes?: number; perCustomerLimit?: number | false }) => {
      const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey();
      const cap = options.perCustomerLimit === undefined ? {} : { perCustomerLimit: options.perCustomerLimit === false ? null : options.perCustomerLimit };
      const client = context.client();
      // Setting an absolute on-hand is idempotent by itself: the service does not read the key
      // here (the document lists none); it is sent and printed as for every change.
      const answer = await client.typed(
        client.api.PUT('/v1/skus/{sku}/stock', { params: { path: { sku } }, body: { onHand, ...(options.stripes === undefined ? {} : { stripes: options.stripes }), ...cap }, headers: { 'idempotency-key': idempotencyKey } }),
      );
      printMutation(context, answer, idempotencyKey);
    });

  stock
    .command('adjust')
    .description('record a receipt (+delta) or a shrinkage (-delta) in the ledger')
    .argument('<sku>', 'SKU id')
    .argument('<delta>', 'units: + receipt, - shrinkage (never 0)', stockDelta)
    .option('--reason <reason>', 'why, kept with the ledger entry', adjustmentReasonDefault)
    .option('--idempotency-key <key>', 'repeat an earlier change with the key it printed (same delta and reason)', idempotencyKeyArgument)
    .action(async (sku: string, delta: number, options: { reason: string; idempotencyKey?: string }) => {
      const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey();
      const client = context.client();
      const answer = await client.typed(client.api.POST('/v1/skus/{sku}/adjustments', { params: { path: { sku }, header: { 'Idempotency-Key': idempotencyKey } }, body: { delta, reason: options.reason } }));
      printMutation(context, answer, idempotencyKey);
    });
}
