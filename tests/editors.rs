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
