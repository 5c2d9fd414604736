import type { QueryOptions, Row, Tx } from "./db.ts";

/**
 * Runs one statement on a transaction's connection, past the handle checks (the adapter's own checks still apply).
 *
 * @example A runner that records statements
 * ```ts
 * import type { RunStatement } from "./savepoint.ts";
 * const sent: string[] = [];
 * const run: RunStatement = (text) => Promise.resolve(void sent.push(text)).then(() => []);
 * ```
 */
export type RunStatement = (text: string, params?: readonly unknown[], options?: QueryOptions) => Promise<Row[]>;

/**
 * Runs `body` inside a savepoint named `name`: resolves with its value once the savepoint is released, rolls back to
 * it and rethrows when `body` throws. For an adapter whose driver manages savepoints itself; without one,
 * {@linkcode Savepoints} sends `SAVEPOINT`/`RELEASE`/`ROLLBACK TO` through its `run`.
 *
 * @example Nesting that only logs (a driver would open and release the savepoint around `body`)
 * ```ts
 * import type { NestStatements } from "./savepoint.ts";
 * const nest: NestStatements = async (name, body) => {
 *   console.log("enter", name);
 *   return await body();
 * };
 * ```
 */
export type NestStatements = <T>(name: string, body: () => Promise<T>) => Promise<T>;

/**
 * The savepoints of one transaction, shared by both adapters: it names them (`sp_1`, `sp_2`, ... unique within the
 * transaction), keeps the stack of open ones, and decides which handle may run statements. Only the innermost open
 * handle may: a statement sent on an outer handle while a savepoint is open would land inside the savepoint and be
 * undone with it, so it is refused instead. When rolling back to a savepoint fails (connection lost, deadline passed),
 * the inner work may still be in the transaction, so every later statement and the commit are refused.
 *
 * @example What an adapter's transaction handle does with it
 * ```ts
 * import type { QueryOptions, Row, Tx } from "./db.ts";
 * import { Savepoints } from "./savepoint.ts";
 * const log: string[] = [];
 * class LoggingTx implements Tx {
 *   readonly savepoints = new Savepoints((text) => {
 *     log.push(text);
 *     return Promise.resolve([]);
 *   });
 *   query<R extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> {
 *     this.savepoints.check(this, "run a query");
 *     return this.savepoints.run(text, params, options) as Promise<R[]>;
 *   }
 *   savepoint<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
 *     return this.savepoints.open(this, fn);
 *   }
 * }
 * await new LoggingTx().savepoint((sp) => sp.query("insert into t values (1)"));
 * console.assert(log.join("; ") === "savepoint sp_1; insert into t values (1); release savepoint sp_1");
 * ```
 */
export class Savepoints {
  /** Open savepoints' handles, innermost last. */
  readonly #open: SavepointTx[] = [];
  #named = 0;
  #broken: Error | undefined;
  /** Runs a statement on the transaction's connection. */
  readonly run: RunStatement;

  readonly #nest: NestStatements;

  constructor(run: RunStatement, nest?: NestStatements) {
    this.run = run;
    this.#nest = nest ?? ((name, body) => this.#nestInSql(name, body));
  }

  /** Throws unless `handle` may run statements now: it is the innermost open handle and no rollback failed. */
  check(handle: Tx, what: string): void {
    if (this.#broken) throw this.#broken;
    const innermost = this.#open.at(-1);
    if (innermost !== undefined && innermost !== handle) {
      throw new Error(`Cannot ${what} while a savepoint opened inside this handle is open: use the savepoint's handle`);
    }
  }

  /** Throws when the transaction must not commit: a rollback to a savepoint failed, or a savepoint is still open. */
  checkCommit(): void {
    if (this.#broken) throw this.#broken;
    const open = this.#open.at(-1);
    if (open !== undefined) {
      throw new Error(`Cannot commit while savepoint ${open.name} is open: await every savepoint() call`);
    }
  }

  /**
   * Runs `fn` inside `SAVEPOINT sp_n` opened from `parent`: releases it when `fn` resolves; rolls back to it and
   * rethrows when `fn` throws.
   */
  async open<T>(parent: Tx, fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.check(parent, "open a savepoint");
    const name = `sp_${++this.#named}`;
    const inner = new SavepointTx(this, name);
    return await this.#nest(name, async () => {
      this.#open.push(inner);
      let value: T;
      try {
        value = await fn(inner);
      } catch (error) {
        this.#close(inner);
        throw error;
      }
      if (!this.#close(inner)) {
        throw new Error(`Cannot release savepoint ${name}: an enclosing savepoint ended first`);
      }
      return value;
    });
  }

  async #nestInSql<T>(name: string, body: () => Promise<T>): Promise<T> {
    await this.run(`savepoint ${name}`);
    let value: T;
    try {
      value = await body();
      await this.run(`release savepoint ${name}`);
    } catch (error) {
      try {
        await this.run(`rollback to savepoint ${name}; release savepoint ${name}`);
      } catch (cause) {
        this.#broken ??= new Error(
          `Cannot continue the transaction: rolling back to savepoint ${name} failed, its work may remain`,
          { cause },
        );
      }
      throw error;
    }
    return value;
  }

  /** Ends `handle` and every handle opened inside it; false when it had been ended already. */
  #close(handle: SavepointTx): boolean {
    if (!this.#open.includes(handle)) return false;
    for (let top = this.#open.pop(); top !== undefined; top = this.#open.pop()) {
      top.ended = true;
      if (top === handle) break;
    }
    return true;
  }
}

/** The handle given to a savepoint's callback; valid until the callback settles. */
class SavepointTx implements Tx {
  readonly #savepoints: Savepoints;
  readonly name: string;
  ended = false;

  constructor(savepoints: Savepoints, name: string) {
    this.#savepoints = savepoints;
    this.name = name;
  }

  query<R extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> {
    try {
      this.#checkUsable("run a query");
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#savepoints.run(text, params, options) as Promise<R[]>;
  }

  async savepoint<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.#checkUsable("open a savepoint");
    return await this.#savepoints.open(this, fn);
  }

  #checkUsable(what: string): void {
    if (this.ended) {
      throw new Error(
        `Cannot ${what}: savepoint ${this.name} has ended (its handle is valid only inside its callback)`,
      );
    }
    this.#savepoints.check(this, what);
  }
}
