-- Private signing keys are stored encrypted (AES-256-GCM under AUTH_KEY_ENCRYPTION_KEY): private_enc holds the
-- ciphertext with its tag, private_iv the IV, both base64url. SQL cannot encrypt without the key, so live rows
-- still holding a plaintext private_jwk are encrypted by the auth service on its next load (which then nulls the
-- plaintext); retired rows lose their private key here, since nothing signs with them again.
--
-- Rotation: a key signs from activates_at (the newest activated key signs); it is published in the JWKS from its
-- creation until retires_at; once that has passed, the service sets retired_at and erases the private key.
alter table signing_keys
  alter column private_jwk drop not null,
  add column private_enc text,
  add column private_iv text,
  add column activates_at timestamptz,
  add column retires_at timestamptz;

update signing_keys set activates_at = created_at;
update signing_keys set private_jwk = null, retires_at = retired_at where retired_at is not null;

alter table signing_keys
  alter column activates_at set not null,
  alter column activates_at set default now(),
  add constraint signing_keys_sealed_whole check ((private_enc is null) = (private_iv is null)),
  add constraint signing_keys_one_private_form check (private_jwk is null or private_enc is null);
