const SCRIPT = new URL("../../../scripts/infra.sh", import.meta.url).pathname;

/** A broker of a test's own, started by scripts/infra.sh on free ports in a temporary directory. */
export interface InfraBroker extends AsyncDisposable {
  /** Client port on 127.0.0.1. */
  readonly port: number;
  /** Stops the broker (`infra.sh down`: SIGTERM, SIGKILL after a grace period); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data (`infra.sh up`), resolving once it serves. */
  start(): Promise<void>;
}

/**
 * Starts a private NATS (with JetStream) or Kafka broker through scripts/infra.sh, with its own
 * `TRELLIS_INFRA_DIR` and free ports, so it can be stopped and restarted without touching the shared instances
 * (`infra.sh down` stops only what it started in that directory). Disposing stops it and removes its data.
 *
 * @example Restart a private NATS server
 * ```ts ignore
 * import { startInfraBroker } from "./infra_broker.ts";
 * await using nats = await startInfraBroker("nats");
 * console.log(`nats://127.0.0.1:${nats.port}`);
 * await nats.stop();
 * await nats.start();
 * ```
 */
export async function startInfraBroker(component: "nats" | "kafka"): Promise<InfraBroker> {
  const dir = await Deno.makeTempDir({ prefix: `trellis-${component}-` });
  const [port, controllerPort] = freePorts(2);
  const env: Record<string, string> = component === "nats"
    ? { TRELLIS_INFRA_DIR: dir, TRELLIS_NATS_PORT: String(port) }
    : {
      TRELLIS_INFRA_DIR: dir,
      TRELLIS_KAFKA_PORT: String(port),
      TRELLIS_KAFKA_CONTROLLER_PORT: String(controllerPort),
    };
  const infra = async (action: "up" | "down") => {
    const out = await new Deno.Command("bash", {
      args: [SCRIPT, action, component],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      const text = new TextDecoder();
      throw new Error(
        `Cannot ${action} a private ${component} broker on port ${port} as infra.sh failed: exit code is ${out.code}\n${
          text.decode(out.stdout)
        }${text.decode(out.stderr)}`,
      );
    }
  };
  const remove = async () => {
    try {
      await infra("down");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
  try {
    await infra("up");
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
  return {
    port,
    stop: () => infra("down"),
    start: () => infra("up"),
    [Symbol.asyncDispose]: remove,
  };
}

/** `n` distinct ports the kernel just handed out on 127.0.0.1 (held at once, then released). */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}
