// The grammar over the repository's real route files (examples/ and the
// UI tests that check cleanly): every character that is not whitespace gets
// a scope of its own, and nothing is marked unknown or invalid — so every
// function, pseudo-variable and keyword those files use is in the
// generated lists.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const repo = path.resolve(__dirname, '..', '..', '..');

async function grammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (s) => new oniguruma.OnigScanner(s),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(
        fs.readFileSync(path.join(__dirname, '..', 'syntaxes', 'sipc.tmLanguage.json'), 'utf8'),
        'sipc.tmLanguage.json',
      ),
  });
  return registry.loadGrammar('source.sipc');
}

function routeFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? routeFiles(path.join(dir, e.name))
        : e.name.endsWith('.route')
          ? [path.join(dir, e.name)]
          : [],
    );
}

test('real route files get a scope for every token and no unknown ones', async () => {
  const g = await grammar();
  const files = [...routeFiles(path.join(repo, 'examples')), ...routeFiles(path.join(repo, 'tests/ui/ok'))];
  assert.ok(files.length >= 3, `found ${files.length} files`);
  const bad = /invalid|entity\.name\.function\.call|variable\.other\.pseudo/;
  for (const file of files) {
    let stack = vsctm.INITIAL;
    fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      const r = g.tokenizeLine(line, stack);
      stack = r.ruleStack;
      for (const t of r.tokens) {
        const text = line.slice(t.startIndex, t.endIndex);
        const where = `${path.relative(repo, file)}:${i + 1}:${t.startIndex + 1} ${JSON.stringify(text)}`;
        if (text.trim() !== '') {
          assert.ok(t.scopes.length > 1, `${where} has no scope`);
        }
        assert.ok(!t.scopes.some((s) => bad.test(s)), `${where}: ${t.scopes.join(' ')}`);
      }
    });
  }
});
