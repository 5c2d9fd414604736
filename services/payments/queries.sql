-- The payments service's SQL (services/payments/store.ts), checked against migrations/payments by
-- `deno task sqlgen`, which generates queries.ts beside this file.
-- migrations: payments

-- name: getPayment :one
-- params: orderId
select order_id, status, amount_cents, provider_ref, reason, refund_ref from payments where order_id = $1;

-- name: lockPayment :one
-- params: orderId
select order_id, status, amount_cents, provider_ref, reason, refund_ref from payments where order_id = $1 for update;

-- A second answer for the same order keeps the first (a redelivered command).
-- name: insertCharge :exec
-- params: orderId, status, amountCents, providerRef, reason
insert into payments (order_id, status, amount_cents, provider_ref, reason) values ($1, $2, $3, $4, $5)
on conflict (order_id) do nothing;

-- name: insertVoided :exec
-- params: orderId, reason, refundRef
insert into payments (order_id, status, amount_cents, reason, refund_ref) values ($1, 'VOIDED', 0, $2, $3);

-- name: markRefunded :exec
-- params: orderId, reason, refundRef
update payments set status = 'REFUNDED', reason = $2, refund_ref = $3, updated_at = now() where order_id = $1;

-- The reconciliation check (services/payments/reconcile.ts) and the management route (services/payments/admin.ts).

-- A page of the SUCCEEDED charges last changed between lookbackMs and graceMs ago, after (afterAt, afterId)
-- when set (afterAt: updated_at as the database's text, read back as updated_at_text).
-- name: settledCharges :many
-- params: graceMs, lookbackMs, limit, afterAt?, afterId?
-- nonnull: updated_at_text
select order_id, amount_cents, updated_at::text as updated_at_text from payments where status = 'SUCCEEDED'
  and updated_at <= now() - $1::double precision * interval '1 millisecond'
  and updated_at >= now() - $2::double precision * interval '1 millisecond'
  and ($4::text is null or (updated_at, order_id) > ($4::text::timestamptz, $5::text))
order by updated_at, order_id limit $3;

-- The messages the outbox (the SDK's table, in this database) holds for a key, oldest first.
-- name: outboxHistory :many
-- params: key
-- nonnull: id
select id::text as id, topic, payload, created_at, published_at from outbox where key = $1 order by seq;
