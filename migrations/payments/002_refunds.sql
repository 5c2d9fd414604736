-- A cancelled order's charge is refunded (REFUNDED, with the provider's refund reference); an order cancelled before
-- any charge is VOIDED, so a charge command arriving later for it is refused instead of charging.
alter table payments drop constraint payments_status_check;
alter table payments add constraint payments_status_check
  check (status in ('SUCCEEDED', 'FAILED', 'REFUNDED', 'VOIDED'));
alter table payments add column refund_ref text not null default '';
alter table payments add column updated_at timestamptz not null default now();
