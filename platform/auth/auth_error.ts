/**
 * OAuth 2.0 bearer-token error codes (RFC 6750 §3.1), plus `temporarily_unavailable` for when the verifying side
 * cannot obtain keys at all, which is the server's fault and not the token's.
 *
 * @example Map a code to its HTTP status
 * ```ts
 * import { AuthError, type AuthErrorCode } from "./auth_error.ts";
 * const code: AuthErrorCode = "insufficient_scope";
 * new AuthError(code, "needs orders:write").status; // 403
 * ```
 */
export type AuthErrorCode = "invalid_request" | "invalid_token" | "insufficient_scope" | "temporarily_unavailable";

const STATUS: Record<AuthErrorCode, number> = {
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  temporarily_unavailable: 503,
};

/**
 * Every failure to authenticate or authorize: a token that is malformed, expired, for someone else, signed by an
 * unknown key, or keys that cannot be fetched. `description` is safe to send to the client (printable ASCII, no
 * quotes or backslashes, so it fits an `error_description` auth-param); `cause` holds the underlying error.
 *
 * @example Tell a bad token from an outage
 * ```ts
 * import { AuthError } from "./auth_error.ts";
 * const err = new AuthError("invalid_token", "token expired");
 * err.status; // 401
 * ```
 */
export class AuthError extends Error {
  /** The OAuth error code. */
  readonly error: AuthErrorCode;
  /** Client-safe explanation, suitable for `error_description`. */
  readonly description: string;
  /** The HTTP status this error maps to. */
  readonly status: number;
  constructor(error: AuthErrorCode, description: string, options: { cause?: unknown } = {}) {
    const safe = description.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");
    super(`${error}: ${safe}`, { cause: options.cause });
    this.name = "AuthError";
    this.error = error;
    this.description = safe;
    this.status = STATUS[error];
  }
}
