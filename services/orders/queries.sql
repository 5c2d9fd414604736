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
