// pushd.d.ts: the documented usage type-checks under strict TypeScript,
// and the misuses marked @ts-expect-error in types/usage.ts are errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

test("pushd.d.ts type-checks the documented API", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  let out = "";
  try {
    out = execFileSync(process.execPath, [tsc, "-p", "types/tsconfig.json"], { encoding: "utf8" });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
  assert.equal(out.trim(), "");
});

test("the npm package describes pushd.js", async () => {
  const { readFileSync, existsSync } = await import("node:fs");
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const { VERSION } = await import("../pushd.js");
  assert.equal(pkg.version, VERSION, "package.json and pushd.js VERSION agree");
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.files.sort(), ["README.md", "pushd.d.ts", "pushd.js"], "tests and node_modules are not published");
  for (const f of [pkg.main, pkg.types, pkg.exports["."].types, pkg.exports["."].default]) {
    assert.ok(existsSync(new URL("../" + f, import.meta.url)), f);
  }
  assert.equal(pkg.dependencies, undefined, "no runtime dependencies");
});
