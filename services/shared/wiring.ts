import { createVerifier, type RemoteJwks, remoteJwks, type Verifier } from "@trellis/platform/auth";
import type { Service } from "@trellis/platform/service";
import type { SystemConfig } from "./config.ts";

/**
 * The auth service's JWKS as a key set shared by one service's verifiers, with a readiness check on it. `fetch` is
 * the service's fetch to auth (`resilienceFor(svc).fetchFor("auth")`), so the key fetches go through its breaker.
 */
export function jwksFor(svc: Service, config: SystemConfig, fetch?: typeof globalThis.fetch): RemoteJwks {
  const jwks = remoteJwks(`${config.authUrl}/.well-known/jwks.json`, { cooldownMs: config.jwksCooldownMs, fetch });
  svc.check("jwks", async () => {
    if (!(await jwks.ready())) throw new Error(`JWKS at ${config.authUrl} not fetched: ${jwks.lastError}`);
  });
  return jwks;
}

/** A verifier for tokens addressed to `audience`. */
export function verifierFor(config: SystemConfig, jwks: RemoteJwks, audience: string): Verifier {
  return createVerifier({ issuer: config.issuer, audience, keys: jwks });
}
