// The sipc extension: highlighting comes from the TextMate grammar
// (syntaxes/), the language features from the language server `sipc lsp`,
// which this file only starts and stops. Two more commands run the binary
// directly: "Run Tests" (`sipc test`, failures as diagnostics on the test
// file) and "Trace" (`sipc trace`, streamed into an output channel); what
// they compute from the binary's output is in commands.js. Plain
// JavaScript, so packaging needs no build step.
'use strict';

const childProcess = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');
const commands = require('./commands');

let client;

function sipcPath() {
  return vscode.workspace.getConfiguration('sipc').get('path') || 'sipc';
}

function serverOptions() {
  return { command: sipcPath(), args: ['lsp'] };
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

// "Run Tests": `sipc test --format json` on a config or test file; the
// report goes to the "sipc tests" channel and each failing test becomes an
// error on its `[[test]]` line of the test file.

let testOutput;
let testDiagnostics;

/** The file a command acts on: the one it was invoked on, else the active editor's. */
function targetFile(uri) {
  if (uri && uri.scheme === 'file') {
    return uri.fsPath;
  }
  const editor = vscode.window.activeTextEditor;
  if (editor && editor.document.uri.scheme === 'file') {
    return editor.document.uri.fsPath;
  }
  return undefined;
}

/** The length of a line of a file as saved (for a diagnostic's range), 0 when unreadable. */
function lineLength(file, line) {
  try {
    return (fs.readFileSync(file, 'utf8').split(/\r?\n/)[line] || '').length;
  } catch {
    return 0;
  }
}

function publishTestDiagnostics(report, cwd) {
  for (const entry of commands.diagnostics(report, cwd)) {
    testDiagnostics.set(
      vscode.Uri.file(entry.file),
      entry.diagnostics.map((d) => {
        const range = new vscode.Range(d.line, 0, d.line, lineLength(entry.file, d.line));
        const diag = new vscode.Diagnostic(range, d.message, vscode.DiagnosticSeverity.Error);
        diag.source = 'sipc test';
        return diag;
      }),
    );
  }
}

/**
 * Runs the tests of `uri` (or the active file), a `.route` or `.test.toml`
 * file as saved on disk. Resolves to the report, or undefined when
 * `sipc test` gave none (not installed, no test file, a bad path: exit
 * code 2 with a message on stderr). The "sipc tests" channel is brought
 * into view when the command is run, and after a run on save only when
 * something failed.
 */
function runTests(uri, { onSave = false } = {}) {
  const file = targetFile(uri);
  if (!file || !commands.isTestable(file)) {
    vscode.window.showErrorMessage('sipc: run tests from a .route or .test.toml file');
    return Promise.resolve(undefined);
  }
  const command = sipcPath();
  const args = commands.testArgs(file);
  const cwd = path.dirname(file);
  testOutput.clear();
  testOutput.appendLine(`${command} ${args.join(' ')}`);
  if (!onSave) {
    testOutput.show(true);
  }
  return new Promise((resolve) => {
    childProcess.execFile(command, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // Exit code 0: every test passed; 1: failures or files that could
      // not run, still with a full report on stdout.
      const code = err ? err.code : 0;
      let report;
      if (code === 0 || code === 1) {
        try {
          report = JSON.parse(stdout);
        } catch {
          report = undefined;
        }
      }
      if (!report) {
        let why;
        if (typeof code === 'number') {
          why = String(stderr).trim() || `exit code ${code}`;
        } else if (err.signal) {
          why = `\`${command} test\` was killed by ${err.signal}`;
        } else {
          why = `could not run \`${command}\` (${err.message}). Install sipc or set "sipc.path".`;
        }
        testOutput.appendLine(why);
        testOutput.show(true);
        vscode.window.showErrorMessage(`sipc test: ${why.split('\n')[0]}`);
        resolve(undefined);
        return;
      }
      publishTestDiagnostics(report, cwd);
      testOutput.append(commands.formatReport(report));
      const summary = commands.summary(report);
      if (report.failed || report.broken_files) {
        testOutput.show(true);
        vscode.window.showWarningMessage(`sipc test: ${summary}`);
      } else {
        vscode.window.setStatusBarMessage(`sipc test: ${summary}`, 5000);
      }
      resolve(report);
    });
  });
}

// "Trace": `sipc trace FILE [--call-id ID | --where CONDITION]` against the
// proxy `sipc run FILE` serves, its output streamed into the "sipc trace"
// channel until "Stop Tracing" (or a new trace) ends it. One trace at a time.

let traceOutput;
// The running trace, and the one the channel shows (it stays the latest
// after it is stopped, so its last words still reach the channel, while a
// replaced trace's do not).
let traceProcess;
let shownTrace;

function setTracing(on) {
  vscode.commands.executeCommand('setContext', 'sipc.tracing', on);
}

function stopTrace() {
  if (traceProcess) {
    const child = traceProcess;
    traceProcess = undefined;
    setTracing(false);
    // What Ctrl-C sends to `sipc trace` in a terminal.
    child.kill('SIGINT');
  }
}

/** Starts tracing the proxy of `uri` (or the active `.route` file); resolves to the child process. */
async function trace(uri) {
  const file = targetFile(uri);
  if (!file || !/\.route$/.test(file)) {
    vscode.window.showErrorMessage('sipc: trace from the .route file the proxy runs (`sipc run FILE`)');
    return undefined;
  }
  const filter = await vscode.window.showInputBox({
    title: `sipc trace ${path.basename(file)}`,
    prompt: 'Trace only the messages with this Call-ID, or for which this condition holds (empty: every message)',
    placeHolder: 'a Call-ID, or a condition such as $fU == "alice" && is_method("INVITE")',
  });
  if (filter === undefined) {
    return undefined;
  }
  stopTrace();
  const command = sipcPath();
  const args = commands.traceArgs(file, filter);
  traceOutput.clear();
  traceOutput.appendLine(`${command} ${args.map((a) => (/[\s"'$]/.test(a) ? `'${a}'` : a)).join(' ')}`);
  traceOutput.show(true);
  const child = childProcess.spawn(command, args, { cwd: path.dirname(file) });
  traceProcess = child;
  shownTrace = child;
  setTracing(true);
  const show = (text) => {
    if (shownTrace === child) {
      traceOutput.append(text);
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', show);
  }
  let spawned = true;
  child.on('error', (err) => {
    spawned = false;
    show(`could not run \`${command}\` (${err.message}). Install sipc or set "sipc.path".\n`);
  });
  child.on('close', (code, signal) => {
    if (spawned) {
      show(signal ? '[sipc trace stopped]\n' : `[sipc trace exited with code ${code}]\n`);
    }
    if (traceProcess === child) {
      traceProcess = undefined;
      setTracing(false);
    }
  });
  return child;
}

function activate(context) {
  testOutput = vscode.window.createOutputChannel('sipc tests');
  testDiagnostics = vscode.languages.createDiagnosticCollection('sipc tests');
  traceOutput = vscode.window.createOutputChannel('sipc trace');
  context.subscriptions.push(
    testOutput,
    testDiagnostics,
    traceOutput,
    { dispose: stopTrace },
    vscode.commands.registerCommand('sipc.runTests', (uri) => runTests(uri)),
    vscode.commands.registerCommand('sipc.trace', trace),
    vscode.commands.registerCommand('sipc.stopTrace', stopTrace),
    vscode.workspace.onDidSaveTextDocument((doc) => {
      if (
        doc.uri.scheme === 'file' &&
        /\.test\.toml$/.test(doc.uri.fsPath) &&
        vscode.workspace.getConfiguration('sipc').get('testOnSave')
      ) {
        return runTests(doc.uri, { onSave: true });
      }
      return undefined;
    }),
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
  stopTrace();
  return stop();
}

module.exports = { activate, deactivate };
