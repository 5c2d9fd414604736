/**
 * `deno task migrations:lint [dir...]`: lints the migration directories (by default every directory under the
 * repository holding `NNN_name.sql` files under a `migrations` folder) for statements unsafe on a live table, skipping
 * the files `migrations/lint-baseline.json` grandfathers. Prints one line per finding (`file:line rule: why`) and exits
 * 1 if there is any, 0 when clean. Runs from the repository root.
 */
import {
  findMigrationDirectories,
  formatMigrationFinding,
  lintMigrationDirectory,
  readMigrationBaseline,
} from "@trellis/platform/db";

const BASELINE = "migrations/lint-baseline.json";

const dirs = Deno.args.length > 0 ? Deno.args : await findMigrationDirectories(".");
const baseline = await readMigrationBaseline(BASELINE);
let problems = 0;
for (const dir of dirs) {
  for (const finding of await lintMigrationDirectory(dir, { baseline })) {
    console.log(formatMigrationFinding(finding));
    problems++;
  }
}
if (problems > 0) {
  console.error(`${problems} unsafe migration statement(s) in ${dirs.length} director(y/ies); see README "Migrations"`);
  Deno.exit(1);
}
