/**
 * Configuration helpers: {@linkcode secret} reads a secret from `NAME` or from the file named by `NAME_FILE`.
 * @module
 */
export * from "./secrets.ts";
