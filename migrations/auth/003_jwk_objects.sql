-- The keystore used to bind JWKs as JSON text into jsonb parameters, which the driver encoded once more, so rows held
-- jsonb strings. It now binds the objects; this turns rows written before into objects, so reads get what the
-- Database contract promises for jsonb (a parsed value) without a second JSON.parse.
update signing_keys set public_jwk = (public_jwk #>> '{}')::jsonb where jsonb_typeof(public_jwk) = 'string';
update signing_keys set private_jwk = (private_jwk #>> '{}')::jsonb where jsonb_typeof(private_jwk) = 'string';
