// Flash-sale guards: a SKU may cap the units one customer holds across its live reservations
// (PUT /v1/skus/{sku}/stock {"perCustomerLimit": n}); null: no cap. On the SKU's own row (a
// stripe's row keeps null: the cap is its SKU's, copied into every stripe's Redis state). The
// reconciler corrects a cap Redis enforces that the ledger does not have: a new correction field.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus ADD COLUMN per_customer_limit integer CHECK (per_customer_limit BETWEEN 1 AND 1000);
    ALTER TABLE reconcile_corrections DROP CONSTRAINT reconcile_corrections_field_check,
      ADD CONSTRAINT reconcile_corrections_field_check CHECK (field IN ('onHand', 'reserved', 'state', 'perCustomerLimit'));
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DELETE FROM reconcile_corrections WHERE field = 'perCustomerLimit';
    ALTER TABLE reconcile_corrections DROP CONSTRAINT reconcile_corrections_field_check,
      ADD CONSTRAINT reconcile_corrections_field_check CHECK (field IN ('onHand', 'reserved', 'state'));
    ALTER TABLE skus DROP COLUMN per_customer_limit;
  `);
}
