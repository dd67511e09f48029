// extension.js with stand-ins for the `vscode` API and the language client:
// checks that activation starts `<sipc.path> lsp` for sipc documents and
// that changing `sipc.path` restarts it. (The grammar is tested by
// vscode-tmgrammar-test; the server itself by the Rust tests.)
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const Module = require('node:module');

function load(settings) {
  const started = [];
  const stopped = [];
  const handlers = {};
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
    },
    commands: {
      registerCommand: (name, f) => {
        handlers[name] = f;
        return { dispose() {} };
      },
    },
    window: { showErrorMessage: (m) => assert.fail(m) },
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
  return { ext, started, stopped, handlers };
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
