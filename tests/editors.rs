//! The editor grammars' word lists must match the lexer and the catalog.
//!
//! `editors/vscode/syntaxes/sipc.tmLanguage.json` (one line per generated
//! repository entry) and `editors/vim/syntax/sipc.vim` (the block between
//! the GENERATED markers) are generated from `sipc dump keywords`, i.e.
//! [`Vocabulary::collect`]. When a keyword or builtin is added this test
//! fails; regenerate with
//!
//!     SIPC_BLESS=1 cargo test --test editors

use serde_json::{Value, json};
use sipc::lsp::vocab::Vocabulary;
use sipc::sema::builtins::{self, PvArg};

const TM_PATH: &str = "editors/vscode/syntaxes/sipc.tmLanguage.json";
const VIM_PATH: &str = "editors/vim/syntax/sipc.vim";

fn bless() -> bool {
    std::env::var_os("SIPC_BLESS").is_some()
}

fn pvs(with_arg: bool) -> Vec<&'static str> {
    builtins::PSEUDO_VARS
        .iter()
        .filter(|p| (p.arg != PvArg::None) == with_arg)
        .map(|p| p.name)
        .collect()
}

/// Routes declared with a name (`failure_route NAME`): all kinds but the two singletons.
fn named_route_kinds(v: &Vocabulary) -> Vec<&'static str> {
    v.route_kinds
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "request_route" | "reply_route"))
        .collect()
}

fn words(v: &Vocabulary, name: &str, scope: &str) -> Value {
    let list = v.classes().iter().find(|c| c.0 == name).map(|c| c.1.join("|")).unwrap_or_default();
    json!({ "name": scope, "match": format!("\\b({list})\\b") })
}

fn tm_entries(v: &Vocabulary) -> Vec<(&'static str, Value)> {
    vec![
        ("route-kinds", words(v, "route_kinds", "keyword.declaration.route.sipc")),
        (
            "route-definition",
            json!({
                "match": format!("\\b({})\\s+([A-Za-z_][A-Za-z0-9_]*|\"[^\"\\n]*\")", named_route_kinds(v).join("|")),
                "captures": {
                    "1": { "name": "keyword.declaration.route.sipc" },
                    "2": { "name": "entity.name.function.route.sipc" },
                },
            }),
        ),
        ("keywords-control", words(v, "control", "keyword.control.sipc")),
        ("keywords-declaration", words(v, "declarations", "keyword.other.declaration.sipc")),
        ("constants-language", words(v, "constants", "constant.language.boolean.sipc")),
        ("keywords-misspelled", words(v, "misspellings", "invalid.illegal.misspelled.sipc")),
        (
            "builtin-functions",
            json!({
                "name": "support.function.builtin.sipc",
                "match": format!("\\b({})\\b(?=\\s*\\()", v.functions.join("|")),
            }),
        ),
        (
            "pseudo-variable-known",
            json!({
                "name": "variable.language.pseudo.sipc",
                "match": format!("\\$({})\\b(?!\\()", pvs(false).join("|")),
            }),
        ),
        (
            "pseudo-variable-with-argument",
            json!({
                "match": format!("(\\$(?:{}))(\\()([^()\\n]*)(\\))", pvs(true).join("|")),
                "captures": {
                    "1": { "name": "variable.language.pseudo.sipc" },
                    "2": { "name": "punctuation.definition.arguments.begin.sipc" },
                    "3": { "name": "variable.parameter.pseudo.sipc" },
                    "4": { "name": "punctuation.definition.arguments.end.sipc" },
                },
            }),
        ),
    ]
}

/// `syn keyword GROUP w1 w2 …`, wrapped under 100 columns.
fn vim_keywords(group: &str, list: &[&str], out: &mut Vec<String>) {
    let head = format!("syn keyword {group:<15}");
    let mut line = head.clone();
    for w in list {
        if line.len() + 1 + w.len() > 100 && line != head {
            out.push(std::mem::replace(&mut line, head.clone()));
        }
        line.push(' ');
        line.push_str(w);
    }
    out.push(line);
}

fn vim_block(v: &Vocabulary) -> Vec<String> {
    let mut out = Vec::new();
    vim_keywords("sipcRouteKind", &v.route_kinds, &mut out);
    vim_keywords("sipcControl", &v.control, &mut out);
    vim_keywords("sipcDeclaration", &v.declarations, &mut out);
    vim_keywords("sipcBoolean", &v.constants, &mut out);
    vim_keywords("sipcMisspelling", &v.misspellings, &mut out);
    vim_keywords("sipcBuiltin", &v.functions, &mut out);
    out.push(format!("syn match   sipcPseudoVar \"\\$\\%({}\\)\\>(\\@!\"", pvs(false).join("\\|")));
    out.push(format!(
        "syn match   sipcPseudoVarArg \"\\$\\%({}\\)([^()]*)\"",
        pvs(true).join("\\|")
    ));
    out
}

#[test]
fn textmate_grammar_matches_vocabulary() {
    let v = Vocabulary::collect();
    let text = std::fs::read_to_string(TM_PATH).expect("grammar");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut stale = Vec::new();
    for (key, value) in tm_entries(&v) {
        let prefix = format!("    \"{key}\": ");
        let want = format!("{prefix}{},", serde_json::to_string(&value).expect("json"));
        let at: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(&prefix))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "{TM_PATH}: expected one line starting with {prefix:?}");
        if lines[at[0]] != want {
            stale.push(key);
            lines[at[0]] = want;
        }
    }
    let new = lines.join("\n") + "\n";
    let _: Value = serde_json::from_str(&new).expect("the grammar stays valid JSON");
    if bless() {
        std::fs::write(TM_PATH, new).expect("write grammar");
        return;
    }
    assert!(
        stale.is_empty(),
        "{TM_PATH}: {stale:?} out of date with the lexer/catalog; run `SIPC_BLESS=1 cargo test --test editors`"
    );
}

#[test]
fn vim_syntax_matches_vocabulary() {
    let v = Vocabulary::collect();
    let text = std::fs::read_to_string(VIM_PATH).expect("vim syntax");
    let (head, rest) = text.split_once("\" BEGIN GENERATED\n").expect("BEGIN GENERATED marker");
    let (old, tail) = rest.split_once("\" END GENERATED\n").expect("END GENERATED marker");
    let block = vim_block(&v).join("\n") + "\n";
    if bless() {
        let new = format!("{head}\" BEGIN GENERATED\n{block}\" END GENERATED\n{tail}");
        std::fs::write(VIM_PATH, new).expect("write vim syntax");
        return;
    }
    assert!(
        old == block,
        "{VIM_PATH} is out of date with the lexer/catalog; run `SIPC_BLESS=1 cargo test --test editors`"
    );
}

/// The subcommand the grammars are documented to come from prints the same words.
#[test]
fn dump_keywords_prints_the_vocabulary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipc"))
        .args(["dump", "keywords", "--format", "json"])
        .output()
        .expect("run sipc");
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed, serde_json::to_value(Vocabulary::collect()).expect("json"));
    assert!(printed["functions"].as_array().is_some_and(|f| f.iter().any(|x| x == "relay")));
}

/// Vim with `editors/vim` on its runtime path re-indents the examples
/// exactly as `sipc fmt` lays them out, and highlights sample tokens with
/// the expected groups. Skipped when `vim` is not installed.
#[test]
fn vim_indents_like_sipc_fmt_and_highlights() {
    use std::process::Command;
    if Command::new("vim").arg("--version").output().is_err() {
        eprintln!("vim is not installed; skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sipc-vim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let runtime = std::fs::canonicalize("editors/vim").expect("editors/vim");
    let mut script = String::from("filetype plugin indent on\nsyntax on\n");
    let mut expected = Vec::new();
    for src in [
        "examples/default.route",
        "examples/bench/stateful.route",
        "tests/ui/ok/all_constructs.route",
    ] {
        let text = std::fs::read_to_string(src).expect("readable");
        let want = sipc::fmt::format_source(sipc::syntax::span::FileId(0), &text).expect("formats");
        let file = dir.join(src.replace('/', "_"));
        std::fs::write(&file, &want).expect("write");
        // Flatten every line, then let Vim indent the whole file.
        script.push_str(&format!(
            "edit {}\nsilent %s/^\\s\\+//e\nsilent normal! gg=G\nwrite\nbwipeout\n",
            file.display()
        ));
        expected.push((src, file, want));
    }
    let sample = dir.join("sample.route");
    std::fs::write(
        &sample,
        "request_route {\n    if $ua =~ \"x\" { drop; }\n    log(info, \"$ru\");\n}\n",
    )
    .expect("write");
    let groups = dir.join("groups.txt");
    script.push_str(&format!(
        "edit {}\nlet g = []\nfor [l, c] in [[1, 1], [2, 5], [2, 8], [2, 16], [2, 23], [3, 5], [3, 16]]\n  \
         call add(g, synIDattr(synID(l, c, 1), 'name'))\nendfor\ncall writefile([&filetype] + g, '{}')\nqa!\n",
        sample.display(),
        groups.display()
    ));
    let script_path = dir.join("script.vim");
    std::fs::write(&script_path, script).expect("write");
    let out = Command::new("vim")
        .args(["-Nu", "NONE", "-i", "NONE", "-es", "--cmd"])
        .arg(format!("set rtp^={}", runtime.display()))
        .arg("-S")
        .arg(&script_path)
        .output()
        .expect("run vim");
    assert!(out.status.success(), "vim failed: {}", String::from_utf8_lossy(&out.stderr));
    for (src, file, want) in expected {
        let got = std::fs::read_to_string(&file).expect("read");
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(5)
            .map(|(i, (w, g))| format!("line {}: want {w:?}, vim {g:?}", i + 1))
            .collect();
        assert!(diff.is_empty(), "{src}: Vim indents differently:\n{}", diff.join("\n"));
    }
    let got = std::fs::read_to_string(&groups).expect("groups");
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(
        got,
        [
            "sipc",
            "sipcRouteKind",
            "sipcControl",
            "sipcPseudoVar",
            "sipcString",
            "sipcControl",
            "sipcBuiltin",
            "sipcPseudoVar"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scratch directory under the system temp dir, removed when dropped
/// (also when an assertion fails).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sipc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first line of `program --version`, or `None` when it cannot be run.
/// A missing editor skips its test, except under `CI=true`, where .ci/run
/// installs it and its absence is a failure.
fn editor_version(program: &str) -> Option<String> {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{program}` is not installed; CI must have it (.ci/run installs it)"
        );
        eprintln!("{program} is not installed; skipped");
    }
    found
}

/// Runs `cmd` with no input and its output in files under `dir`, killing it
/// after `limit`. Returns whether it exited successfully, and its output.
fn run_bounded(
    mut cmd: std::process::Command,
    dir: &std::path::Path,
    limit: std::time::Duration,
) -> (bool, String) {
    use std::process::Stdio;
    let stdout = dir.join("stdout.txt");
    let stderr = dir.join("stderr.txt");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let mut child = cmd.spawn().expect("spawn editor");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for editor") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let Some(status) = status else {
        panic!("{cmd:?} did not finish within {limit:?}; killed\n{output}");
    };
    (status.success(), output)
}

/// Two route files, each calling a misspelled builtin on its third line
/// (at different columns).
const MISSPELLED_A: &str = "# a misspelled builtin\nrequest_route {\n    recod_route();\n}\n";
const MISSPELLED_B: &str = "request_route {\n    if is_method(\"INVITE\") {\n        maxfwd_okk();\n    }\n    relay();\n}\n";

/// Drives Neovim: loads editors/vim/lsp.lua, opens a.route and b.route
/// from $SIPC_TEST_DIR, waits (at most 10 s each) for the server's
/// diagnostics and writes what it saw to result.txt, one fact a line.
const NVIM_DRIVER: &str = r#"
local dir = vim.env.SIPC_TEST_DIR
local out = {}
local ok, err = pcall(function()
  vim.g.sipc_lsp_cmd = { vim.env.SIPC_TEST_BIN, 'lsp' }
  dofile(vim.env.SIPC_TEST_LSP_LUA)
  for _, name in ipairs({ 'a.route', 'b.route' }) do
    vim.cmd('edit ' .. vim.fn.fnameescape(dir .. '/' .. name))
    local got = vim.wait(10000, function() return #vim.diagnostic.get(0) > 0 end, 50)
    table.insert(out, string.format('file %s filetype=%s diagnostics=%s', name, vim.bo.filetype, tostring(got)))
    for _, d in ipairs(vim.diagnostic.get(0)) do
      table.insert(out, string.format('diag %d:%d %s', d.lnum + 1, d.col + 1, (d.message:gsub('\n', ' | '))))
    end
  end
  local names = {}
  for _, c in pairs((vim.lsp.get_clients or vim.lsp.get_active_clients)()) do
    table.insert(names, c.name)
  end
  table.insert(out, 'clients ' .. table.concat(names, ','))
end)
if not ok then
  table.insert(out, 'error ' .. tostring(err))
end
vim.fn.writefile(out, dir .. '/result.txt')
vim.cmd('qa!')
"#;

/// Checks the driver's result.txt for both files: filetype `sipc`, each
/// misspelling reported at its line with the did-you-mean.
fn assert_misspellings_reported(editor: &str, result: &[&str]) {
    let find = |prefix: &str, needles: &[&str]| {
        assert!(
            result.iter().any(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n))),
            "{editor}: no line starting with {prefix:?} containing {needles:?} in\n{}",
            result.join("\n")
        );
    };
    find("file a.route filetype=sipc diagnostics=true", &[]);
    find("diag 3:5 ", &["cannot find function `recod_route`", "did you mean `record_route`?"]);
    find("file b.route filetype=sipc diagnostics=true", &[]);
    find("diag 3:9 ", &["cannot find function `maxfwd_okk`", "did you mean `maxfwd_ok`?"]);
    let diags = result.iter().filter(|l| l.starts_with("diag ")).count();
    assert_eq!(diags, 2, "{editor}: expected one diagnostic a file in\n{}", result.join("\n"));
}

/// Neovim with editors/vim on its runtimepath and editors/vim/lsp.lua
/// loaded detects `.route` files, starts `sipc lsp` (the binary under test,
/// through `g:sipc_lsp_cmd`) and shows its diagnostics: the misspelled
/// builtin with its suggestion, on the right line, for two buffers served
/// by one client. Runs whichever `nvim` is installed (Debian 12 ships 0.7,
/// which takes lsp.lua's `vim.lsp.start_client` path).
#[test]
fn neovim_shows_sipc_lsp_diagnostics() {
    use std::process::Command;
    let Some(version) = editor_version("nvim") else { return };
    eprintln!("running {version}");
    let scratch = Scratch::new("nvim");
    let dir = &scratch.0;
    std::fs::write(dir.join("a.route"), MISSPELLED_A).expect("write");
    std::fs::write(dir.join("b.route"), MISSPELLED_B).expect("write");
    let driver = dir.join("driver.lua");
    std::fs::write(&driver, NVIM_DRIVER).expect("write");
    let runtime = std::fs::canonicalize("editors/vim").expect("editors/vim");
    let mut cmd = Command::new("nvim");
    // --clean: no user config or plugins; the XDG directories keep
    // Neovim's state and the LSP log inside the scratch directory.
    cmd.args(["--clean", "--headless", "-n", "-i", "NONE"])
        .args(["--cmd", "lua vim.opt.runtimepath:prepend(vim.env.SIPC_TEST_RUNTIME)"])
        .args(["-c", "lua dofile(vim.env.SIPC_TEST_DRIVER)"])
        .env("SIPC_TEST_DIR", dir)
        .env("SIPC_TEST_DRIVER", &driver)
        .env("SIPC_TEST_RUNTIME", &runtime)
        .env("SIPC_TEST_LSP_LUA", runtime.join("lsp.lua"))
        .env("SIPC_TEST_BIN", env!("CARGO_BIN_EXE_sipc"));
    for xdg in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"] {
        cmd.env(xdg, dir.join("xdg"));
    }
    let (ok, output) = run_bounded(cmd, dir, std::time::Duration::from_secs(60));
    let result = std::fs::read_to_string(dir.join("result.txt")).unwrap_or_default();
    assert!(ok && !result.is_empty(), "nvim failed; result: {result:?}\n{output}");
    let result: Vec<&str> = result.lines().collect();
    assert_misspellings_reported(&version, &result);
    assert!(
        result.contains(&"clients sipc"),
        "{version}: expected one sipc client:\n{}",
        result.join("\n")
    );
}

/// Drives Vim with ALE: loads ALE and editors/vim/ale_linters/sipc/sipc.vim,
/// opens a.route and b.route from $SIPC_TEST_DIR, lints each and waits (at
/// most 10 s each) for the diagnostics, and writes what it saw to
/// result.txt in the same form as the Neovim driver.
const ALE_DRIVER: &str = r#"
let s:out = []
try
  packadd ale
catch
  call writefile(['no ale: ' . v:exception], $SIPC_TEST_DIR . '/result.txt')
  qall!
endtry
filetype plugin indent on
let g:ale_sipc_sipc_executable = $SIPC_TEST_BIN
for s:name in ['a.route', 'b.route']
  execute 'edit' fnameescape($SIPC_TEST_DIR . '/' . s:name)
  ALELint
  let s:waited = 0
  while empty(ale#engine#GetLoclist(bufnr(''))) && s:waited < 10000
    sleep 50m
    let s:waited += 50
  endwhile
  let s:diags = ale#engine#GetLoclist(bufnr(''))
  call add(s:out, printf('file %s filetype=%s diagnostics=%s', s:name, &filetype, empty(s:diags) ? 'false' : 'true'))
  for s:d in s:diags
    call add(s:out, printf('diag %d:%d %s [%s]', s:d.lnum, s:d.col, s:d.text, s:d.linter_name))
  endfor
endfor
call writefile(s:out, $SIPC_TEST_DIR . '/result.txt')
qall!
"#;

/// Plain Vim with ALE (Debian: vim-ale) and editors/vim on its runtimepath
/// runs `sipc lsp` through editors/vim/ale_linters/sipc/sipc.vim and shows
/// its diagnostics, the misspelled builtin on the right line with its
/// suggestion.
#[test]
fn vim_ale_shows_sipc_lsp_diagnostics() {
    use std::process::Command;
    let Some(version) = editor_version("vim") else { return };
    let scratch = Scratch::new("vim-ale");
    let dir = &scratch.0;
    std::fs::write(dir.join("a.route"), MISSPELLED_A).expect("write");
    std::fs::write(dir.join("b.route"), MISSPELLED_B).expect("write");
    let driver = dir.join("driver.vim");
    std::fs::write(&driver, ALE_DRIVER).expect("write");
    let runtime = std::fs::canonicalize("editors/vim").expect("editors/vim");
    let mut cmd = Command::new("vim");
    cmd.args(["-Nu", "NONE", "-i", "NONE", "-es"])
        .args(["--cmd", r"let &rtp = escape($SIPC_TEST_RUNTIME, ',\') . ',' . &rtp"])
        .arg("-S")
        .arg(&driver)
        .env("SIPC_TEST_DIR", dir)
        .env("SIPC_TEST_RUNTIME", &runtime)
        .env("SIPC_TEST_BIN", env!("CARGO_BIN_EXE_sipc"));
    let (_, output) = run_bounded(cmd, dir, std::time::Duration::from_secs(60));
    let result = std::fs::read_to_string(dir.join("result.txt")).unwrap_or_default();
    if result.starts_with("no ale") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ALE is not installed; CI must have it (.ci/run installs vim-ale)\n{result}"
        );
        eprintln!("ALE is not installed (Debian: vim-ale); skipped");
        return;
    }
    assert!(!result.is_empty(), "vim wrote no result\n{output}");
    let result: Vec<&str> = result.lines().collect();
    assert_misspellings_reported(&format!("{version} with ALE"), &result);
}

/// A config whose two tests pass, for `:SipcTest`'s message on success.
const PASSING_ROUTE: &str = r#"listen udp 127.0.0.1:5060;

request_route {
    if is_method("OPTIONS") {
        reply(200, "OK");
        exit;
    }
    reply(404, "Not Found");
}
"#;
const PASSING_TESTS: &str = r#"[[test]]
name = "OPTIONS is answered"
method = "OPTIONS"
ruri = "sip:127.0.0.1:5060"
expect = { reply = 200 }

[[test]]
name = "anything else is refused"
method = "INVITE"
ruri = "sip:bob@127.0.0.1"
expect = { reply = 404, reason = "Not Found" }
"#;

/// Drives Neovim: with `g:sipc_path` set to $SIPC_TEST_BIN, runs
/// `:SipcTest` from failing.route and from failing.test.toml, then from
/// passing.route, writing to result.txt each buffer's filetype, whether a
/// quickfix window is open, the quickfix entries and the message; then
/// runs `:SipcTrace` (no proxy serves the config, so `sipc trace` says so)
/// and writes the terminal's text once that message appears (at most 10 s).
const NVIM_SIPC_TEST_DRIVER: &str = r#"
local dir = vim.env.SIPC_TEST_DIR
local out = {}
local function quickfix(label, message)
  local windows = 0
  for _, w in ipairs(vim.fn.getwininfo()) do
    if w.quickfix == 1 then
      windows = windows + 1
    end
  end
  table.insert(out, string.format('run %s filetype=%s qfwindows=%d message=%s', label, vim.bo.filetype, windows,
    vim.trim(message)))
  for _, e in ipairs(vim.fn.getqflist()) do
    table.insert(out, string.format('qf %s:%d valid=%d %s', vim.fn.fnamemodify(vim.fn.bufname(e.bufnr), ':t'),
      e.lnum, e.valid, e.text))
  end
end
local ok, err = pcall(function()
  vim.g.sipc_path = vim.env.SIPC_TEST_BIN
  for _, name in ipairs({ 'failing.route', 'failing.test.toml', 'passing.route' }) do
    vim.cmd('edit ' .. vim.fn.fnameescape(dir .. '/' .. name))
    local message = vim.fn.execute('SipcTest')
    -- :copen moves to the quickfix window; report from the file's buffer.
    if vim.bo.buftype == 'quickfix' then
      vim.cmd('wincmd p')
    end
    quickfix(name, message)
    vim.cmd('cclose')
  end
  vim.cmd('edit ' .. vim.fn.fnameescape(dir .. '/failing.route'))
  vim.cmd([[SipcTrace --where '$fU == "alice"' --count 1]])
  local buf = vim.api.nvim_get_current_buf()
  local function text()
    return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '')
  end
  vim.wait(10000, function() return text():find('no sipc answers on', 1, true) ~= nil end, 50)
  table.insert(out, string.format('trace buftype=%s text=%s', vim.bo[buf].buftype, text()))
end)
if not ok then
  table.insert(out, 'error ' .. tostring(err))
end
vim.fn.writefile(out, dir .. '/result.txt')
vim.cmd('qa!')
"#;

/// Neovim with editors/vim on its runtimepath: `:SipcTest` (ftplugin/sipc.vim,
/// autoload/sipc.vim) runs the binary under test on a copy of
/// tests/data/sipc_test/failing.route and fills the quickfix list with its
/// two failing tests, at their `[[test]]` lines of failing.test.toml (7 and
/// 13), each naming the test and its mismatches' expected and actual
/// values, and opens the quickfix window; the same from the `.test.toml`
/// buffer (filetype toml, ftplugin/toml/sipc.vim); a config whose tests pass
/// gets an empty list and "2 tests passed". `:SipcTrace` runs
/// `sipc trace FILE ARGS` in a terminal window.
#[test]
fn neovim_sipc_test_fills_the_quickfix_list() {
    use std::process::Command;
    let Some(version) = editor_version("nvim") else { return };
    eprintln!("running {version}");
    let scratch = Scratch::new("nvim-test");
    let dir = &scratch.0;
    for name in ["failing.route", "failing.test.toml"] {
        std::fs::copy(format!("tests/data/sipc_test/{name}"), dir.join(name)).expect("copy");
    }
    std::fs::write(dir.join("passing.route"), PASSING_ROUTE).expect("write");
    std::fs::write(dir.join("passing.test.toml"), PASSING_TESTS).expect("write");
    let driver = dir.join("driver.lua");
    std::fs::write(&driver, NVIM_SIPC_TEST_DRIVER).expect("write");
    let runtime = std::fs::canonicalize("editors/vim").expect("editors/vim");
    let mut cmd = Command::new("nvim");
    cmd.args(["--clean", "--headless", "-n", "-i", "NONE"])
        .args(["--cmd", "lua vim.opt.runtimepath:prepend(vim.env.SIPC_TEST_RUNTIME)"])
        .args(["-c", "lua dofile(vim.env.SIPC_TEST_DRIVER)"])
        .env("SIPC_TEST_DIR", dir)
        .env("SIPC_TEST_DRIVER", &driver)
        .env("SIPC_TEST_RUNTIME", &runtime)
        .env("SIPC_TEST_BIN", env!("CARGO_BIN_EXE_sipc"));
    for xdg in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"] {
        cmd.env(xdg, dir.join("xdg"));
    }
    let (ok, output) = run_bounded(cmd, dir, std::time::Duration::from_secs(60));
    let result = std::fs::read_to_string(dir.join("result.txt")).unwrap_or_default();
    assert!(ok && !result.is_empty(), "nvim failed; result: {result:?}\n{output}");
    let lines: Vec<&str> = result.lines().collect();
    let context = format!("{version}:\n{result}");
    // The quickfix entries of each run, after its `run` line.
    let runs: Vec<(&str, Vec<&str>)> = result
        .split("\nrun ")
        .map(|run| {
            let mut l = run.trim_start_matches("run ").lines();
            (l.next().unwrap_or(""), l.filter(|l| l.starts_with("qf ")).collect())
        })
        .collect();
    assert_eq!(runs.len(), 3, "{context}");
    let failures = [
        (
            "qf failing.test.toml:7 valid=1 wrong reply: ",
            [
                "step 1: reply: expected 404, got 486",
                "step 1: reason: expected Not Found, got Busy Here",
            ],
        ),
        (
            "qf failing.test.toml:13 valid=1 wrong relay in a follow-up: ",
            [
                "step 1: flags: expected [], got [\"SEEN\"]",
                "step 2: relay: expected [\"udp:127.0.0.1:5090\"], got []",
            ],
        ),
    ];
    for ((head, entries), filetype) in runs.iter().take(2).zip(["sipc", "toml"]) {
        assert!(
            head.contains(&format!("filetype={filetype} qfwindows=1 ")),
            "a failing run must open the quickfix window: {head:?}\n{context}"
        );
        assert_eq!(entries.len(), 2, "two failing tests, two entries\n{context}");
        for (entry, (prefix, needles)) in entries.iter().zip(&failures) {
            assert!(entry.starts_with(prefix), "{entry:?} should start with {prefix:?}\n{context}");
            for needle in needles {
                assert!(entry.contains(needle), "{entry:?} should contain {needle:?}\n{context}");
            }
        }
    }
    let (head, entries) = &runs[2];
    assert!(
        head.starts_with("passing.route filetype=sipc qfwindows=0 message=2 tests passed"),
        "{context}"
    );
    assert!(entries.is_empty(), "{context}");
    let trace = lines.iter().find(|l| l.starts_with("trace ")).unwrap_or(&"");
    assert!(
        trace.starts_with("trace buftype=terminal text=error: no sipc answers on "),
        "`sipc trace` should have run in a terminal and found no proxy\n{context}"
    );
}
