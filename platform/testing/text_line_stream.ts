/**
 * Splits a text stream into lines (without the newline or a trailing `\r`), like std's `TextLineStream`, which this
 * project does not depend on. Used to read child processes' output line by line.
 *
 * @example
 * ```ts ignore
 * const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
 * for await (const line of lines) console.log(line);
 * ```
 */
export class TextLineStream extends TransformStream<string, string> {
  constructor() {
    let rest = "";
    super({
      transform(chunk, controller) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        for (const p of parts) controller.enqueue(p.replace(/\r$/, ""));
      },
      flush(controller) {
        if (rest) controller.enqueue(rest);
      },
    });
  }
}
