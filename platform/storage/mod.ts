/**
 * Object storage behind one interface: local disk (S3 to follow).
 * @module
 */
export * from "./object_store.ts";
export * from "./local.ts";
