-- The orders service's SQL (services/orders/store.ts), checked against migrations/orders by `deno task sqlgen`, which
-- generates queries.ts beside this file.
-- migrations: orders

-- name: insertOrder :one
-- params: id, customerId, items, totalCents, paymentToken, idempotencyKey?, deadlineMs
insert into orders (id, customer_id, items, total_cents, payment_token, status, step, idempotency_key, deadline_at)
values ($1, $2, $3::jsonb, $4, $5, 'PENDING', 'RESERVING', $6, now() + $7::double precision * interval '1 millisecond')
on conflict (customer_id, idempotency_key) do nothing
returning *;

-- name: getOrderByKey :one
-- params: customerId, idempotencyKey
select * from orders where customer_id = $1 and idempotency_key = $2;

-- name: getOrder :one
-- params: id
select * from orders where id = $1;

-- name: lockOrder :one
-- params: id
select * from orders where id = $1 for update;

-- name: setOrderState :exec
-- params: id, status, step, reason
update orders set status = $2, step = $3, reason = $4, updated_at = now() where id = $1;

-- The oldest PENDING order past its deadline that nobody else holds, with the database's clock (which set it).
-- name: lockOverdueOrder :one
-- nonnull: db_now
select *, now() as db_now from orders where status = 'PENDING' and deadline_at <= now()
order by deadline_at limit 1 for update skip locked;

-- The reconciliation checks (services/orders/reconcile.ts) and the management routes (services/orders/admin.ts).

-- An order locked for a repair, with the database's clock (the deadline is on it).
-- name: lockOrderWithClock :one
-- params: id
-- nonnull: db_now
select *, now() as db_now from orders where id = $1 for update;

-- A page of the CONFIRMED orders last changed between lookbackMs and graceMs ago, after (afterAt, afterId) when set:
-- afterAt is updated_at as the database's text (a Date would drop its microseconds), read back as updated_at_text.
-- name: settledConfirmedOrders :many
-- params: graceMs, lookbackMs, limit, afterAt?, afterId?
-- nonnull: updated_at_text
select *, updated_at::text as updated_at_text from orders where status = 'CONFIRMED'
  and updated_at <= now() - $1::double precision * interval '1 millisecond'
  and updated_at >= now() - $2::double precision * interval '1 millisecond'
  and ($4::text is null or (updated_at, id) > ($4::text::timestamptz, $5::text))
order by updated_at, id limit $3;

-- name: pendingPastDeadline :many
-- params: graceMs, limit
-- nonnull: late_s
select id, step, extract(epoch from now() - deadline_at)::float8 as late_s from orders
where status = 'PENDING' and deadline_at <= now() - $1::double precision * interval '1 millisecond'
order by deadline_at limit $2;

-- Orders PENDING past their deadline, most overdue first, with how long on the database's clock.
-- name: stuckOrders :many
-- params: limit
-- nonnull: overdue_ms
select id, step, deadline_at, (extract(epoch from now() - deadline_at) * 1000)::bigint as overdue_ms
from orders where status = 'PENDING' and deadline_at < now() order by deadline_at limit $1;

-- The messages the outbox (the SDK's table, in this database) holds for a key, oldest first.
-- name: outboxHistory :many
-- params: key
-- nonnull: id
select id::text as id, topic, payload, created_at, published_at from outbox where key = $1 order by seq;

-- How many orders are still PENDING past their deadline (the orders_sagas_past_deadline gauge, services/orders/metrics.ts).
-- name: countPendingPastDeadline :one
-- nonnull: n
select count(*) as n from orders where status = 'PENDING' and deadline_at < now();
