//! The formatter: idempotent on every example and every UI test that
//! parses, keeps every token and every comment, and lays out a few golden
//! cases exactly. The examples must already be formatted (CI also runs
//! `sipc fmt --check` on them).

use std::path::{Path, PathBuf};

use sipc::fmt::format_source;
use sipc::syntax::lexer::lex;
use sipc::syntax::span::FileId;
use sipc::syntax::trivia::comments;

fn route_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("dir exists").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            route_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "route") {
            out.push(p);
        }
    }
}

fn fmt(src: &str) -> String {
    format_source(FileId(0), src).unwrap_or_else(|d| panic!("does not format: {d:#?}\n{src}"))
}

fn token_texts(src: &str) -> Vec<String> {
    lex(FileId(0), src).0.iter().map(|t| src[t.0..t.2].to_string()).collect()
}

fn comment_texts(src: &str) -> Vec<String> {
    let (toks, _) = lex(FileId(0), src);
    comments(src, &toks).iter().map(|c| src[c.start..c.end].trim_end().to_string()).collect()
}

/// Formatting twice changes nothing more, and keeps tokens and comments.
fn assert_stable(name: &str, src: &str) {
    let once = fmt(src);
    let twice = fmt(&once);
    assert!(once == twice, "{name}: not idempotent\n--- once ---\n{once}\n--- twice ---\n{twice}");
    assert_eq!(token_texts(src), token_texts(&once), "{name}: tokens changed");
    assert_eq!(comment_texts(src), comment_texts(&once), "{name}: comments changed");
}

#[test]
fn examples_are_formatted_and_stable() {
    let mut files = Vec::new();
    route_files(Path::new("examples"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let name = f.display().to_string();
        assert_stable(&name, &src);
        assert!(fmt(&src) == src, "{name} is not formatted: run `sipc fmt {name}`");
    }
}

#[test]
fn ui_tests_that_parse_are_stable() {
    let mut files = Vec::new();
    route_files(Path::new("tests/ui"), &mut files);
    let mut formatted = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        if format_source(FileId(0), &src).is_ok() {
            assert_stable(&f.display().to_string(), &src);
            formatted += 1;
        }
    }
    assert!(formatted >= 40, "only {formatted} UI tests parse");
}

#[test]
fn syntax_errors_are_not_formatted() {
    let errs = format_source(FileId(0), "request_route { relay( }").unwrap_err();
    assert!(errs.iter().all(|d| d.code.id().starts_with("E01")), "{errs:#?}");
}

#[test]
fn golden_layout() {
    let src = "
# header comment


listen udp 127.0.0.1:5060;   const X=-1 ;
request_route{if(!is_method(\"INVITE\")&&$rU==\"\"){reply(404,\"Not here\");exit;}
else if $var(x)>-2 {   // why
relay();} else {  }
  switch $rm { case \"A\" : log(info,\"a $rm\");
  # before b
  case \"B\":
  default : drop; }
   route(X) ;
}
";
    let want = "# header comment

listen udp 127.0.0.1:5060;
const X = -1;
request_route {
    if (!is_method(\"INVITE\") && $rU == \"\") {
        reply(404, \"Not here\");
        exit;
    } else if $var(x) > -2 { // why
        relay();
    } else {}
    switch $rm {
        case \"A\":
            log(info, \"a $rm\");
        # before b
        case \"B\":
        default:
            drop;
    }
    route(X);
}
";
    assert_eq!(fmt(src), want);
    assert_stable("golden", src);
}

#[test]
fn golden_comments() {
    let src = "route A {
    if a ||   # first half
       b {
        /* block
           kept as is */ x();
    }
    f(1, /* inline */ 2);   # trailing
    g();                    # aligned
}
";
    let want = "route A {
    if a || # first half
        b {
        /* block
           kept as is */ x();
    }
    f(1, /* inline */ 2); # trailing
    g();                  # aligned
}
";
    assert_eq!(fmt(src), want);
    assert_stable("comments", src);
}

/// `sipc fmt --check` lists what would change and exits 1; `sipc fmt`
/// rewrites; a file with syntax errors is left alone and exits 1.
#[test]
fn command_line() {
    let dir = std::env::temp_dir().join(format!("sipc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let messy = dir.join("messy.route");
    let clean = dir.join("clean.route");
    let broken = dir.join("broken.route");
    std::fs::write(&messy, "request_route{relay();}").expect("write");
    std::fs::write(&clean, "request_route {\n    relay();\n}\n").expect("write");
    std::fs::write(&broken, "request_route { relay( }").expect("write");
    let sipc = |args: &[&std::path::Path]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("fmt")
            .args(args)
            .output()
            .expect("run sipc fmt");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let check = std::path::Path::new("--check");
    let (code, stdout) = sipc(&[check, &messy, &clean]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout.trim(), messy.display().to_string());
    assert_eq!(sipc(&[check, &clean]).0, Some(0));
    assert_eq!(sipc(&[&messy]).0, Some(0));
    assert_eq!(
        std::fs::read_to_string(&messy).expect("read"),
        "request_route {\n    relay();\n}\n"
    );
    assert_eq!(sipc(&[&broken]).0, Some(1));
    assert_eq!(std::fs::read_to_string(&broken).expect("read"), "request_route { relay( }");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The layout does not depend on the input's layout: changing the
/// whitespace between two tokens (spaces, tabs, a line break; blank lines
/// and comments left as they are) never changes the output.
#[test]
fn output_ignores_the_input_layout() {
    let mut files = Vec::new();
    route_files(Path::new("examples"), &mut files);
    route_files(Path::new("tests/ui"), &mut files);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6d_cdd9)
    };
    let mut checked = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let Ok(want) = format_source(FileId(0), &src) else { continue };
        let (toks, _) = lex(FileId(0), &src);
        for _ in 0..8 {
            let mut out = String::with_capacity(src.len() * 2);
            let mut prev = 0;
            for pair in toks.windows(2) {
                let (end, start) = (pair[0].2, pair[1].0);
                out.push_str(&src[prev..end]);
                let gap = &src[end..start];
                let only_space = gap.bytes().all(|b| b == b' ' || b == b'\t' || b == b'\n');
                let lines = gap.bytes().filter(|&b| b == b'\n').count();
                if only_space && lines < 2 && next() % 3 == 0 {
                    out.push_str(["  ", "\t", "\n", "\n\t  ", " "][(next() % 5) as usize]);
                } else {
                    out.push_str(gap);
                }
                prev = start;
            }
            out.push_str(&src[prev..]);
            let got = fmt(&out);
            assert!(
                got == want,
                "{}: layout leaked into the output for\n{out}\n--- got ---\n{got}",
                f.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
}
