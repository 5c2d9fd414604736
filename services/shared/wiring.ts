import { createVerifier, type RemoteJwks, remoteJwks, type Verifier } from "@trellis/platform/auth";
import {
  authorization,
  type GrpcService,
  serveGrpcWith,
  serverMetrics,
  serviceTokenAuthorizer,
} from "@trellis/platform/grpc";
import type { Service } from "@trellis/platform/service";
import type { SystemConfig } from "./config.ts";
import { resilienceFor } from "./resilience.ts";

/**
 * The auth service's JWKS as a key set shared by one service's verifiers, with a readiness check on it. The key
 * fetches go through the service's breaker for auth (`resilienceFor(svc).fetchFor("auth")`).
 */
export function jwksFor(svc: Service, config: SystemConfig): RemoteJwks {
  const jwks = remoteJwks(`${config.authUrl}/.well-known/jwks.json`, {
    cooldownMs: config.jwksCooldownMs,
    fetch: resilienceFor(svc).fetchFor("auth"),
  });
  svc.check("jwks", async () => {
    if (!(await jwks.ready())) throw new Error(`JWKS at ${config.authUrl} not fetched: ${jwks.lastError}`);
  });
  return jwks;
}

/** A verifier for tokens addressed to `audience`. */
export function verifierFor(config: SystemConfig, jwks: RemoteJwks, audience: string): Verifier {
  return createVerifier({ issuer: config.issuer, audience, keys: jwks });
}

/**
 * Serves a service's internal gRPC API from start to stop of `svc`, as every service with one does: on
 * `config.hostname`, counted on `/metrics` (refusals included, as metrics run first), and open only to a service token
 * addressed to `audience` with the `internal` scope; with `endUsers`, an end-user token sent beside it is verified too.
 */
export function serveInternalGrpc(
  svc: Service,
  config: SystemConfig,
  jwks: RemoteJwks,
  options: { port: number; audience: string; services: GrpcService[]; endUsers?: Verifier },
): void {
  const authorizer = serviceTokenAuthorizer(verifierFor(config, jwks, options.audience), options.endUsers);
  serveGrpcWith(svc, {
    port: options.port,
    hostname: config.hostname,
    interceptors: [serverMetrics(svc.registry), authorization(authorizer, { logger: svc.logger })],
    services: options.services,
  });
}
