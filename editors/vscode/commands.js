// The parts of the "Run Tests" and "Trace" commands that do not need VS
// Code: the command lines of `sipc test` and `sipc trace`, and what the JSON
// report of `sipc test --format json` turns into (diagnostics on the test
// files, a summary for the output channel). No `vscode` import, so
// `node --test` checks it directly against the binary's real output.
'use strict';

const path = require('node:path');

/** Whether `sipc test` can run on this file: a config or a test file. */
function isTestable(file) {
  return /\.route$/.test(file) || /\.test\.toml$/.test(file);
}

/** The arguments of `sipc test` for a `.route` or `.test.toml` file. */
function testArgs(file) {
  return ['test', '--format', 'json', file];
}

/** One mismatch, on one line: `step N: key: expected X, got Y`. */
function mismatchText(m) {
  return `step ${m.step}: ${m.key}: expected ${m.expected}, got ${m.actual}`;
}

/**
 * The diagnostics a report puts on its test files: one entry per test file
 * of the report, `{ file, diagnostics }`, with `file` resolved against
 * `cwd` (the directory `sipc test` ran in; the report's paths are as it
 * was given them). A file whose tests all passed gets an empty list, so
 * the caller clears what an earlier run left on it.
 *
 * Each diagnostic is `{ line, message, test }`, `line` 0-based:
 * - a failing test: at its `[[test]]` header, the test's name followed by
 *   its error and its mismatches, one a line;
 * - a file that could not run (its config has errors, the test file is
 *   invalid): one diagnostic at the first line with the error text
 *   (`test` is null).
 */
function diagnostics(report, cwd) {
  return (report.files || []).map((f) => {
    const file = path.resolve(cwd, f.file);
    if (f.error != null) {
      return { file, diagnostics: [{ line: 0, message: String(f.error).trimEnd(), test: null }] };
    }
    const diags = (f.tests || [])
      .filter((t) => !t.passed)
      .map((t) => ({
        line: Math.max(0, (t.line || 1) - 1),
        message: [t.name, ...(t.error != null ? [t.error] : []), ...(t.mismatches || []).map(mismatchText)].join(
          '\n',
        ),
        test: t.name,
      }));
    return { file, diagnostics: diags };
  });
}

/** The totals line: `3 tests: 1 passed, 2 failed, 1 file could not run`. */
function summary(report) {
  const passed = report.passed || 0;
  const failed = report.failed || 0;
  const broken = report.broken_files || 0;
  const total = passed + failed;
  let s = `${total} test${total === 1 ? '' : 's'}: ${passed} passed, ${failed} failed`;
  if (broken) {
    s += `, ${broken} file${broken === 1 ? '' : 's'} could not run`;
  }
  return s;
}

/**
 * The report as text, in the layout of `sipc test`'s human output: each
 * test file with its config, `ok`/`FAIL` per test (with the line of its
 * header), each mismatch as a `-` expected and a `+` actual line under its
 * step, the error of a file that could not run, and the totals.
 */
function formatReport(report) {
  const out = [];
  for (const f of report.files || []) {
    out.push(`${f.file} (${f.config})`);
    if (f.error != null) {
      const [first, ...rest] = String(f.error).trimEnd().split('\n');
      out.push(`  error: ${first}`, ...rest.map((l) => `  ${l}`.trimEnd()));
      continue;
    }
    for (const t of f.tests || []) {
      if (t.passed) {
        out.push(`  ok    ${t.name}`);
        continue;
      }
      out.push(`  FAIL  ${t.name}  (line ${t.line})`);
      if (t.error != null) {
        out.push(...String(t.error).split('\n').map((l) => `        ${l}`.trimEnd()));
      }
      let step;
      for (const m of t.mismatches || []) {
        if (m.step !== step) {
          step = m.step;
          out.push(`        step ${m.step} (${m.event}):`);
        }
        out.push(`        - ${m.key} = ${m.expected}`, `        + ${m.key} = ${m.actual}`);
      }
    }
  }
  out.push('', summary(report));
  return out.join('\n') + '\n';
}

/**
 * Whether the text typed for "Trace" is a condition in the route language
 * rather than a Call-ID: it has a pseudo-variable, an operator, blanks,
 * or starts with a function call (`is_method("INVITE")`). Call-IDs are one
 * word without any of those.
 */
function isCondition(filter) {
  return /\s|\$|==|!=|=~|&&|\|\||^!?[A-Za-z_][A-Za-z0-9_]*\(/.test(filter);
}

/**
 * The arguments of `sipc trace` for a config and what was typed in the
 * prompt: nothing (every message), a Call-ID (`--call-id`) or a condition
 * (`--where`).
 */
function traceArgs(file, filter) {
  const f = (filter || '').trim();
  if (f === '') {
    return ['trace', file];
  }
  return ['trace', file, isCondition(f) ? '--where' : '--call-id', f];
}

module.exports = { isTestable, testArgs, mismatchText, diagnostics, summary, formatReport, isCondition, traceArgs };
