create table payments (
  order_id text primary key,
  status text not null check (status in ('SUCCEEDED', 'FAILED')),
  amount_cents bigint not null,
  provider_ref text not null default '',
  reason text not null default '',
  created_at timestamptz not null default now()
);

