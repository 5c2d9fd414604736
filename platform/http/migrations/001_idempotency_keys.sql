-- Idempotency keys (platform/http idempotency()): one row per scope and key. `status` is null while the first
-- request is in flight; `expires_at` (epoch ms of the middleware's clock) is the lease then, the replay TTL after.
create table idempotency_keys (
  scope text not null,
  key text not null,
  token uuid not null,
  fingerprint text not null,
  expires_at bigint not null,
  status integer,
  headers jsonb,
  body bytea,
  primary key (scope, key)
);
create index idempotency_keys_expiry on idempotency_keys (expires_at);
