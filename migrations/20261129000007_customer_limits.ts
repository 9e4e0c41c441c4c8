// Flash-sale guards: a SKU may cap the units one customer holds across its live reservations
// (PUT /v1/skus/{sku}/stock {"perCustomerLimit": n}); null: no cap. On the SKU's own row (a
// stripe's row keeps null: the cap is its SKU's, copied into every stripe's Redis state).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE skus ADD COLUMN per_customer_limit integer CHECK (per_customer_limit BETWEEN 1 AND 1000)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE skus DROP COLUMN per_customer_limit');
}
