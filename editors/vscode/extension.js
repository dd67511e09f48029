// The sipc extension: highlighting comes from the TextMate grammar
// (syntaxes/), everything else from the language server `sipc lsp`, which
// this file only starts and stops. Plain JavaScript, so packaging needs no
// build step.
'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration('sipc').get('path') || 'sipc';
  return { command, args: ['lsp'] };
}

async function start(context) {
  client = new LanguageClient(
    'sipc',
    'sipc',
    serverOptions(),
    { documentSelector: [{ language: 'sipc' }] },
  );
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `sipc: could not start \`${serverOptions().command} lsp\` (${err.message}). ` +
        'Install sipc or set "sipc.path".',
    );
  }
}

async function stop() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop().catch(() => {});
  }
}

function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('sipc.restartServer', async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration('sipc.path')) {
        await stop();
        await start(context);
      }
    }),
  );
  return start(context);
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
