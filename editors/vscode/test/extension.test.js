// extension.js with stand-ins for the `vscode` API and the language client:
// checks that activation starts `<sipc.path> lsp` for sipc documents and
// that changing `sipc.path` restarts it; and, with a stand-in `sipc`
// binary, that "Run Tests" puts failures on the test file and clears them,
// and that "Trace" streams `sipc trace` into its channel until stopped.
// (The grammar is tested by vscode-tmgrammar-test; the server itself by
// the Rust tests; the JSON report by commands.test.js.)
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Module = require('node:module');

function load(settings, window = {}) {
  const started = [];
  const stopped = [];
  const handlers = {};
  const channels = {};
  const diagnostics = new Map();
  const messages = [];
  const context = {};
  class LanguageClient {
    constructor(id, name, server, client) {
      Object.assign(this, { id, name, server, client });
    }
    async start() {
      started.push(this);
    }
    async stop() {
      stopped.push(this);
    }
  }
  const vscode = {
    workspace: {
      getConfiguration: (section) => ({ get: (key) => settings[`${section}.${key}`] }),
      onDidChangeConfiguration: (f) => {
        handlers.config = f;
        return { dispose() {} };
      },
      onDidSaveTextDocument: (f) => {
        handlers.save = f;
        return { dispose() {} };
      },
    },
    commands: {
      registerCommand: (name, f) => {
        handlers[name] = f;
        return { dispose() {} };
      },
      executeCommand: async (name, key, value) => {
        if (name === 'setContext') context[key] = value;
      },
    },
    window: {
      showErrorMessage: (m) => assert.fail(m),
      showWarningMessage: (m) => messages.push(`warning ${m}`),
      setStatusBarMessage: (m) => messages.push(`status ${m}`),
      createOutputChannel: (name) => {
        const channel = {
          text: '',
          append: (t) => (channel.text += t),
          appendLine: (t) => (channel.text += `${t}\n`),
          clear: () => (channel.text = ''),
          show: () => {},
          dispose: () => {},
        };
        channels[name] = channel;
        return channel;
      },
      ...window,
    },
    languages: {
      createDiagnosticCollection: () => ({
        set: (uri, list) => diagnostics.set(uri.fsPath, list),
        dispose: () => {},
      }),
    },
    Uri: { file: (fsPath) => ({ scheme: 'file', fsPath }) },
    Range: class {
      constructor(l1, c1, l2, c2) {
        Object.assign(this, { start: { line: l1, character: c1 }, end: { line: l2, character: c2 } });
      }
    },
    Diagnostic: class {
      constructor(range, message, severity) {
        Object.assign(this, { range, message, severity });
      }
    },
    DiagnosticSeverity: { Error: 0 },
  };
  const resolve = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') return vscode;
    if (request === 'vscode-languageclient/node') return { LanguageClient };
    return resolve.call(this, request, ...rest);
  };
  delete require.cache[require.resolve('../extension.js')];
  const ext = require('../extension.js');
  Module._load = resolve;
  return { ext, started, stopped, handlers, channels, diagnostics, messages, context };
}

test('starts `sipc lsp` for sipc documents', async () => {
  const { ext, started } = load({});
  await ext.activate({ subscriptions: [] });
  assert.strictEqual(started.length, 1);
  assert.deepStrictEqual(started[0].server, { command: 'sipc', args: ['lsp'] });
  assert.deepStrictEqual(started[0].client.documentSelector, [{ language: 'sipc' }]);
});

test('honours sipc.path and restarts when it changes', async () => {
  const settings = { 'sipc.path': '/opt/sipc/bin/sipc' };
  const { ext, started, stopped, handlers } = load(settings);
  await ext.activate({ subscriptions: [] });
  assert.strictEqual(started[0].server.command, '/opt/sipc/bin/sipc');
  settings['sipc.path'] = '/usr/local/bin/sipc';
  await handlers.config({ affectsConfiguration: (s) => s === 'sipc.path' });
  assert.strictEqual(stopped.length, 1);
  assert.strictEqual(started[1].server.command, '/usr/local/bin/sipc');
  await ext.deactivate();
  assert.strictEqual(stopped.length, 2);
});

// A stand-in `sipc` for the commands that run the binary: `test` prints the
// JSON in the file $SIPC_FAKE_REPORT and exits with $SIPC_FAKE_CODE, or,
// with $SIPC_FAKE_STDERR set, prints that on stderr and exits 2; `trace`
// prints a traced request and runs until interrupted. Each run's arguments
// and directory are appended to $SIPC_FAKE_LOG.
const FAKE_SIPC = `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(process.env.SIPC_FAKE_LOG, JSON.stringify({ args, cwd: process.cwd() }) + '\\n');
if (args[0] === 'test') {
  if (process.env.SIPC_FAKE_STDERR) {
    process.stderr.write(process.env.SIPC_FAKE_STDERR + '\\n');
    process.exit(2);
  }
  process.stdout.write(fs.readFileSync(process.env.SIPC_FAKE_REPORT));
  process.exit(Number(process.env.SIPC_FAKE_CODE));
}
process.stderr.write('tracing; stop with Ctrl-C\\n');
process.stdout.write('=== request: OPTIONS sip:127.0.0.1:5060 SIP/2.0 from udp:127.0.0.1:5070 (Call-ID abc@x)\\n');
setInterval(() => {}, 1000);
`;

const repo = path.resolve(__dirname, '..', '..', '..');

/** A scratch directory with the stand-in binary and a copy of tests/data/sipc_test/failing.*. */
function scratch(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-vscode-')));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'sipc');
  fs.writeFileSync(bin, FAKE_SIPC);
  fs.chmodSync(bin, 0o755);
  for (const name of ['failing.route', 'failing.test.toml']) {
    fs.copyFileSync(path.join(repo, 'tests/data/sipc_test', name), path.join(dir, name));
  }
  const env = {
    SIPC_FAKE_LOG: path.join(dir, 'log'),
    SIPC_FAKE_REPORT: path.join(dir, 'report.json'),
    SIPC_FAKE_CODE: '1',
    SIPC_FAKE_STDERR: '',
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const runs = () =>
    fs.existsSync(env.SIPC_FAKE_LOG)
      ? fs.readFileSync(env.SIPC_FAKE_LOG, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      : [];
  return { dir, bin, runs };
}

/**
 * The report `sipc test --format json` printed for failing.route
 * (test/data/failing-broken.json), with the paths as the binary prints them
 * when run beside the files; `pass` makes every test pass.
 */
function failingReport({ pass = false } = {}) {
  const all = JSON.parse(fs.readFileSync(path.join(__dirname, 'data', 'failing-broken.json'), 'utf8'));
  const f = all.files.find((x) => x.file.endsWith('failing.test.toml'));
  f.file = 'failing.test.toml';
  f.config = 'failing.route';
  if (pass) {
    for (const t of f.tests) Object.assign(t, { passed: true, mismatches: [] });
  }
  const failed = f.tests.filter((t) => !t.passed).length;
  return { files: [f], passed: f.tests.length - failed, failed, broken_files: 0 };
}

test('"Run Tests" puts failing tests on their lines of the test file, and clears them', async (t) => {
  if (process.platform === 'win32') return t.skip('the stand-in sipc is a script with a #! line');
  const { dir, bin, runs } = scratch(t);
  const route = path.join(dir, 'failing.route');
  const testFile = path.join(dir, 'failing.test.toml');
  const settings = { 'sipc.path': bin };
  const errors = [];
  const window = {
    activeTextEditor: { document: { uri: { scheme: 'file', fsPath: route } } },
    showErrorMessage: (m) => errors.push(m),
  };
  const { ext, handlers, channels, diagnostics, messages } = load(settings, window);
  await ext.activate({ subscriptions: [] });

  fs.writeFileSync(process.env.SIPC_FAKE_REPORT, JSON.stringify(failingReport()));
  const report = await handlers['sipc.runTests']();
  assert.strictEqual(report.failed, 2);
  assert.deepStrictEqual(runs(), [{ args: ['test', '--format', 'json', route], cwd: dir }]);
  const diags = diagnostics.get(testFile);
  assert.deepStrictEqual(
    diags.map((d) => [d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character]),
    [
      [6, 0, 6, '[[test]]'.length],
      [12, 0, 12, '[[test]]'.length],
    ],
  );
  assert.deepStrictEqual(
    diags.map((d) => d.message),
    [
      'wrong reply\nstep 1: reply: expected 404, got 486\nstep 1: reason: expected Not Found, got Busy Here',
      'wrong relay in a follow-up\nstep 1: flags: expected [], got ["SEEN"]\n' +
        'step 2: reply: expected 503, got 500\nstep 2: relay: expected ["udp:127.0.0.1:5090"], got []',
    ],
  );
  assert.ok(diags.every((d) => d.severity === 0 && d.source === 'sipc test'));
  const out = channels['sipc tests'].text;
  assert.match(out, /FAIL {2}wrong reply/);
  assert.match(out, /- reason = Not Found\n\s+\+ reason = Busy Here/);
  assert.match(out, /3 tests: 1 passed, 2 failed\n$/);
  assert.deepStrictEqual(messages, ['warning sipc test: 3 tests: 1 passed, 2 failed']);

  // Saving the test file runs its tests only with sipc.testOnSave.
  const saved = { uri: { scheme: 'file', fsPath: testFile } };
  await handlers.save(saved);
  assert.strictEqual(runs().length, 1);
  settings['sipc.testOnSave'] = true;
  fs.writeFileSync(process.env.SIPC_FAKE_REPORT, JSON.stringify(failingReport({ pass: true })));
  process.env.SIPC_FAKE_CODE = '0';
  await handlers.save(saved);
  assert.deepStrictEqual(runs()[1], { args: ['test', '--format', 'json', testFile], cwd: dir });
  assert.deepStrictEqual(diagnostics.get(testFile), []);
  assert.strictEqual(messages[1], 'status sipc test: 3 tests: 3 passed, 0 failed');

  // No report (exit code 2): the message on stderr, diagnostics untouched.
  process.env.SIPC_FAKE_STDERR = 'error: `failing.route` has no tests';
  assert.strictEqual(await handlers['sipc.runTests'](), undefined);
  assert.deepStrictEqual(errors, ['sipc test: error: `failing.route` has no tests']);
  assert.deepStrictEqual(diagnostics.get(testFile), []);
});

test('"Trace" streams `sipc trace` with the filter typed into its channel until stopped', async (t) => {
  if (process.platform === 'win32') return t.skip('the stand-in sipc is a script with a #! line');
  const { dir, bin, runs } = scratch(t);
  const route = path.join(dir, 'failing.route');
  const prompts = [];
  const window = {
    activeTextEditor: { document: { uri: { scheme: 'file', fsPath: route } } },
    showInputBox: async (options) => {
      prompts.push(options);
      return '$fU == "alice"';
    },
  };
  const { ext, handlers, channels, context } = load({ 'sipc.path': bin }, window);
  await ext.activate({ subscriptions: [] });
  const child = await handlers['sipc.trace']();
  assert.strictEqual(prompts.length, 1);
  assert.strictEqual(context['sipc.tracing'], true);
  const closed = new Promise((resolve) => child.on('close', resolve));
  const channel = channels['sipc trace'];
  for (let i = 0; i < 200 && !channel.text.includes('=== request'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.match(channel.text, /=== request: OPTIONS sip:127.0.0.1:5060 SIP\/2.0/);
  assert.deepStrictEqual(runs(), [{ args: ['trace', route, '--where', '$fU == "alice"'], cwd: dir }]);
  handlers['sipc.stopTrace']();
  await closed;
  assert.strictEqual(context['sipc.tracing'], false);
  assert.match(channel.text, /\[sipc trace stopped\]\n$/);
  await ext.deactivate();
});
