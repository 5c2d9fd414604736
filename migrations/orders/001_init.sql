create table orders (
  id text primary key,
  customer_id text not null,
  items jsonb not null,
  total_cents bigint not null,
  payment_token text not null,
  status text not null check (status in ('PENDING', 'CONFIRMED', 'CANCELLED')),
  step text not null check (step in ('RESERVING', 'CHARGING', 'RELEASING', 'DONE')),
  reason text not null default '',
  idempotency_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (customer_id, idempotency_key)
);
create index orders_unfinished on orders (updated_at) where step <> 'DONE';

