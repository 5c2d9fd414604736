/**
 * Authentication and authorization: ES256 signing keys (and their encryption at rest), token issuing, JWKS serving and fetching, token
 * verification with a verified-token cache, bearer/scope middleware, password hashing, and service tokens.
 * @module
 */
export * from "./auth_error.ts";
export * from "./keys.ts";
export * from "./key_encryption.ts";
export * from "./issuer.ts";
export * from "./jwks.ts";
export * from "./remote_jwks.ts";
export * from "./verifier.ts";
export * from "./middleware.ts";
export * from "./password.ts";
export * from "./service_token.ts";
export * from "./agents.ts";
