// commands.js against real output of `sipc test --format json`: the reports
// in test/data/ were printed by the binary, run from the repository root
//   failing-broken.json  sipc test --format json tests/data/sipc_test/{broken,failing,typo}.test.toml
//   passed.json          sipc test --format json examples/default.route
// and, when a built binary is found ($SIPC_BIN, else debug/sipc under
// $CARGO_TARGET_DIR or target/), the same command run now must still give
// the same diagnostics.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const commands = require('../commands');

const repo = path.resolve(__dirname, '..', '..', '..');
const sample = (name) => JSON.parse(fs.readFileSync(path.join(__dirname, 'data', name), 'utf8'));
const inRepo = (p) => path.join(repo, p);

/** What failing-broken.json must turn into: file → [line, message] per diagnostic. */
function expectedFailingBroken(d) {
  const byFile = Object.fromEntries(d.map((e) => [e.file, e.diagnostics]));
  assert.deepStrictEqual(Object.keys(byFile).sort(), [
    inRepo('tests/data/sipc_test/broken.test.toml'),
    inRepo('tests/data/sipc_test/failing.test.toml'),
    inRepo('tests/data/sipc_test/typo.test.toml'),
  ]);
  // A failing test: its name, then each mismatch, at its [[test]] line.
  assert.deepStrictEqual(
    byFile[inRepo('tests/data/sipc_test/failing.test.toml')].map((x) => [x.line, x.test, x.message]),
    [
      [
        6,
        'wrong reply',
        'wrong reply\nstep 1: reply: expected 404, got 486\nstep 1: reason: expected Not Found, got Busy Here',
      ],
      [
        12,
        'wrong relay in a follow-up',
        'wrong relay in a follow-up\nstep 1: flags: expected [], got ["SEEN"]\n' +
          'step 2: reply: expected 503, got 500\nstep 2: relay: expected ["udp:127.0.0.1:5090"], got []',
      ],
    ],
  );
  // A config with errors: one diagnostic at the first line, the whole error.
  const broken = byFile[inRepo('tests/data/sipc_test/broken.test.toml')];
  assert.strictEqual(broken.length, 1);
  assert.strictEqual(broken[0].line, 0);
  assert.strictEqual(broken[0].test, null);
  assert.match(broken[0].message, /^the config `tests\/data\/sipc_test\/broken.route` has errors:\n/);
  assert.match(broken[0].message, /cannot find function `recod_route`/);
  assert.match(broken[0].message, /did you mean `record_route`\?$/);
  // An invalid test file: the same.
  assert.deepStrictEqual(byFile[inRepo('tests/data/sipc_test/typo.test.toml')], [
    {
      line: 0,
      test: null,
      message: '`tests/data/sipc_test/typo.test.toml`: unknown key `expcet` in test 1 `misspelt expectation key`',
    },
  ]);
}

test('failing tests and broken files become diagnostics on the test files', () => {
  expectedFailingBroken(commands.diagnostics(sample('failing-broken.json'), repo));
});

test('the failing tests are at the lines of their [[test]] headers', () => {
  const lines = fs.readFileSync(inRepo('tests/data/sipc_test/failing.test.toml'), 'utf8').split('\n');
  const report = sample('failing-broken.json');
  const tests = report.files.find((f) => f.file.endsWith('failing.test.toml')).tests;
  for (const t of tests) {
    assert.strictEqual(lines[t.line - 1], '[[test]]', `${t.name}: line ${t.line}`);
    assert.strictEqual(lines[t.line], `name = ${JSON.stringify(t.name)}`);
  }
});

test('a report where every test passed clears the diagnostics of its test file', () => {
  const report = sample('passed.json');
  assert.deepStrictEqual(commands.diagnostics(report, repo), [
    { file: inRepo('examples/default.test.toml'), diagnostics: [] },
  ]);
  assert.strictEqual(report.failed, 0);
  assert.match(commands.summary(report), /^(\d+) tests: \1 passed, 0 failed$/);
});

test('the report as text reads like `sipc test` output', () => {
  const text = commands.formatReport(sample('failing-broken.json'));
  const want = [
    'tests/data/sipc_test/failing.test.toml (tests/data/sipc_test/failing.route)',
    '  ok    passes',
    '  FAIL  wrong reply  (line 7)',
    '        step 1 (INVITE sip:busy@127.0.0.1):',
    '        - reply = 404',
    '        + reply = 486',
    '        - reason = Not Found',
    '        + reason = Busy Here',
    '  FAIL  wrong relay in a follow-up  (line 13)',
    '        step 1 (INVITE sip:carol@127.0.0.1):',
    '        - flags = []',
    '        + flags = ["SEEN"]',
    '        step 2 (503 Service Unavailable from udp:127.0.0.1:5080):',
    '        - reply = 503',
    '        + reply = 500',
    '        - relay = ["udp:127.0.0.1:5090"]',
    '        + relay = []',
  ].join('\n');
  assert.ok(text.includes(want), text);
  assert.ok(
    text.includes(
      'tests/data/sipc_test/typo.test.toml (tests/data/sipc_test/typo.route)\n' +
        '  error: `tests/data/sipc_test/typo.test.toml`: unknown key `expcet` in test 1 `misspelt expectation key`\n',
    ),
    text,
  );
  assert.ok(text.includes('  error: the config `tests/data/sipc_test/broken.route` has errors:\n'), text);
  assert.ok(text.endsWith('\n\n3 tests: 1 passed, 2 failed, 2 files could not run\n'), text);
});

test('the command lines of sipc test and sipc trace', () => {
  assert.deepStrictEqual(commands.testArgs('/x/a.route'), ['test', '--format', 'json', '/x/a.route']);
  assert.ok(commands.isTestable('/x/a.route') && commands.isTestable('/x/a.test.toml'));
  assert.ok(!commands.isTestable('/x/Cargo.toml') && !commands.isTestable('/x/a.route.bak'));
  assert.deepStrictEqual(commands.traceArgs('/x/a.route', ''), ['trace', '/x/a.route']);
  assert.deepStrictEqual(commands.traceArgs('/x/a.route', '  '), ['trace', '/x/a.route']);
  for (const callId of ['abc@x', '3848276298220188511@192.0.2.10', 'a6c85cf-1f2e.b9', 'x!%*_+~:/[]?{}']) {
    assert.deepStrictEqual(commands.traceArgs('/x/a.route', ` ${callId} `), [
      'trace',
      '/x/a.route',
      '--call-id',
      callId,
    ]);
  }
  for (const condition of [
    '$fU == "alice"',
    '$fU=="alice"',
    'is_method("INVITE")',
    '!is_method("OPTIONS")',
    '$rU =~ "^00"',
    'is_method("INVITE") && $fd != "example.com"',
  ]) {
    assert.deepStrictEqual(commands.traceArgs('/x/a.route', condition), [
      'trace',
      '/x/a.route',
      '--where',
      condition,
    ]);
  }
});

function builtBinary() {
  if (process.env.SIPC_BIN) return process.env.SIPC_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
  const bin = path.join(target, 'debug', process.platform === 'win32' ? 'sipc.exe' : 'sipc');
  return fs.existsSync(bin) ? bin : undefined;
}

test('the binary still prints reports that give these diagnostics', (t) => {
  const bin = builtBinary();
  if (!bin) return t.skip('no built sipc (set SIPC_BIN, or build with cargo)');
  const run = (args) => {
    const r = childProcess.spawnSync(bin, ['test', '--format', 'json', ...args], { cwd: repo, encoding: 'utf8' });
    assert.ok(r.status === 0 || r.status === 1, `${bin} ${args}: exit ${r.status}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  // The files of the sample (the directory holds passing ones too).
  const failing = run(['broken', 'failing', 'typo'].map((n) => `tests/data/sipc_test/${n}.test.toml`));
  expectedFailingBroken(commands.diagnostics(failing, repo));
  assert.deepStrictEqual(
    commands.diagnostics(failing, repo),
    commands.diagnostics(sample('failing-broken.json'), repo),
  );
  const passed = run(['examples/default.route']);
  assert.deepStrictEqual(commands.diagnostics(passed, repo), [
    { file: inRepo('examples/default.test.toml'), diagnostics: [] },
  ]);
});
