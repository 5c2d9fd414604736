import type { Metadata } from "@grpc/grpc-js";
import {
  AuthError,
  createVerifier,
  type RemoteJwks,
  remoteJwks,
  serviceTokenSource,
  type Verifier,
} from "@trellis/platform/auth";
import {
  type Authorize,
  type GrpcService,
  PermissionDeniedError,
  serveGrpc,
  UnauthenticatedError,
  UnavailableError,
} from "@trellis/platform/grpc";
import type { Service } from "@trellis/platform/service";
import { ContextHeaders, currentContext } from "@trellis/platform/context";
import type { ServiceClient, SystemConfig } from "./config.ts";

/** The auth service's JWKS as a key set shared by one service's verifiers, with a readiness check on it. */
export function jwksFor(svc: Service, config: SystemConfig): RemoteJwks {
  const jwks = remoteJwks(`${config.authUrl}/.well-known/jwks.json`, { cooldownMs: config.jwksCooldownMs });
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
 * A gRPC authorize hook: a valid service token addressed to this service, with the `internal` scope. With
 * `endUsers`, an `x-end-user-token` sent beside it is verified too and becomes `ctx.endUser`.
 */
export function serviceTokenAuthorizer(verifier: Verifier, endUsers?: Verifier): Authorize {
  return async (metadata: Metadata) => {
    const header = String(metadata.get("authorization")[0] ?? "");
    if (!header.startsWith("Bearer ")) return false;
    try {
      const principal = await verifier.verify(header.slice(7));
      if (!principal.scopes.includes("internal")) throw new PermissionDeniedError("the internal scope is required");
      const userToken = metadata.get(ContextHeaders.endUserToken)[0];
      if (endUsers && typeof userToken === "string") currentContext()!.endUser = await endUsers.verify(userToken);
      return principal;
    } catch (err) {
      if (err instanceof AuthError) throw new UnauthenticatedError(err.description);
      throw err;
    }
  };
}

/**
 * A cached client-credentials token source for calls from `client` to `audience`. Failing to get a token is the
 * auth service being unavailable to us, so it surfaces as {@linkcode UnavailableError} (503 at the edge), not as an
 * internal error.
 */
export function tokensFor(config: SystemConfig, client: ServiceClient, audience: string): () => Promise<string> {
  const source = serviceTokenSource({
    tokenUrl: `${config.authUrl}/oauth/token`,
    clientId: client,
    clientSecret: config.clientSecrets[client],
    audience,
  });
  return async () => {
    try {
      return await source();
    } catch (err) {
      throw new UnavailableError(`cannot get a service token for ${audience}`, { cause: err });
    }
  };
}

/** Serves gRPC from start to stop of `svc`; returns a getter for the bound address. */
export function grpcServer(
  svc: Service,
  port: number,
  hostname: string,
  services: () => GrpcService[],
  authorize?: Authorize,
): () => string {
  let address = "";
  svc.onStart("grpc", async () => {
    const server = await serveGrpc({ services: services(), port, hostname, authorize, logger: svc.logger });
    address = server.address;
    svc.onStop("grpc", (signal) => server.close(signal.aborted ? 0 : 5_000));
  });
  return () => address;
}
