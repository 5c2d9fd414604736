-- Every order has a deadline: a saga still PENDING past it is compensated to CANCELLED by the orders service's sweep.
-- New orders set it from ORDER_DEADLINE_MS; rows that exist before this migration (and rows inserted by an older
-- version during a rolling deploy) get one minute from now, the default setting, rather than being expired at once.
alter table orders add column deadline_at timestamptz not null default (now() + interval '1 minute');
create index orders_pending_deadline on orders (deadline_at) where status = 'PENDING';
