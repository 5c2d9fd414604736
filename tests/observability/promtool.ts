import { within } from "@trellis/platform/testing";

/** Runs `promtool` (Debian's `prometheus` package, installed by `scripts/infra.sh up`) with `args` and `stdin`. */
export async function promtool(
  args: string[],
  stdin?: string,
): Promise<{ code: number; output: string }> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("promtool", {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("promtool is not installed: run `bash scripts/infra.sh up` (it installs Debian's prometheus)");
    }
    throw err;
  }
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await within(child.output(), 30_000, `promtool ${args.join(" ")} to finish`);
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}
