/**
 * A progress bar on stderr, drawn only when stderr is a terminal (scripts and pipes see nothing of it), redrawn in
 * place and erased by `done()`.
 */
export class Progress {
  #done = 0;
  readonly #draw: boolean;
  readonly #encoder = new TextEncoder();

  constructor(readonly label: string, readonly total: number, tty = Deno.stderr.isTerminal()) {
    this.#draw = tty && total > 0;
    this.#render("");
  }

  /** Counts `n` more units done, with what is under way now. */
  tick(n = 1, note = ""): void {
    this.#done = Math.min(this.total, this.#done + n);
    this.#render(note);
  }

  /** Erases the bar. */
  done(): void {
    if (this.#draw) this.#write("\r\x1b[2K");
  }

  #render(note: string): void {
    if (!this.#draw) return;
    const width = 30;
    const filled = Math.round((this.#done / this.total) * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    this.#write(`\r\x1b[2K${this.label} ${bar} ${this.#done}/${this.total} ${note}`.slice(0, 200));
  }

  #write(s: string): void {
    Deno.stderr.writeSync(this.#encoder.encode(s));
  }
}
