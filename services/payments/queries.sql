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
