//! `sipc lsp` end to end: the built binary driven over stdio with
//! JSON-RPC, framed with `Content-Length` headers as editors do.
//!
//! Every read is bounded by a timeout, and the child is killed when the
//! test's handle drops, so a hung server fails the test instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications read while waiting for something else.
    pending: Vec<Value>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sipc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sipc lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; len.expect("Content-Length header")];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let v: Value = serde_json::from_slice(&body).expect("JSON body");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut s = Server { child, stdin, rx, next_id: 1, pending: Vec::new() };
        let caps = s.request(
            "initialize",
            json!({ "processId": null, "rootUri": null, "capabilities": {} }),
        );
        assert!(caps["capabilities"]["hoverProvider"].as_bool().unwrap_or(false), "{caps}");
        s.notify("initialized", json!({}));
        s
    }

    fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn recv(&mut self) -> Value {
        match self.rx.recv_timeout(TIMEOUT) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("no message from sipc lsp within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("sipc lsp closed its output"),
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(&json!(id)) {
                assert!(msg.get("error").is_none(), "{method} failed: {msg}");
                return msg["result"].clone();
            }
            self.pending.push(msg);
        }
    }

    /// The next `publishDiagnostics` for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let is_it = |m: &Value| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
        };
        if let Some(i) = self.pending.iter().position(is_it) {
            let m = self.pending.remove(i);
            return m["params"]["diagnostics"].as_array().cloned().unwrap_or_default();
        }
        loop {
            let m = self.recv();
            if is_it(&m) {
                return m["params"]["diagnostics"].as_array().cloned().unwrap_or_default();
            }
            self.pending.push(m);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "sipc", "version": 1, "text": text } }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let mut params = json!({
            "textDocument": { "uri": uri },
            "position": { "line": line, "character": character },
        });
        if method == "textDocument/references" {
            params["context"] = json!({ "includeDeclaration": true });
        }
        self.request(method, params)
    }

    fn shutdown(mut self) {
        let r = self.request("shutdown", Value::Null);
        assert!(r.is_null());
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "sipc lsp exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "sipc lsp did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A scratch directory with the files of one test.
fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipc-lsp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write");
    }
    dir
}

fn uri(dir: &std::path::Path, file: &str) -> String {
    format!("file://{}", dir.join(file).display())
}

fn utf16_len(s: &str) -> u64 {
    s.encode_utf16().count() as u64
}

#[test]
fn diagnostics_hover_completion_definition() {
    let dir = scratch("main", &[]);
    let main = uri(&dir, "main.route");
    let mut s = Server::start();

    // An unknown function after non-ASCII text on the same line.
    let prefix = "    log(info, \"☎ café 😀\"); ";
    let broken = format!("# café ☎\nrequest_route {{\n{prefix}relya();\n}}\n");
    s.open(&main, &broken);
    let diags = s.diagnostics(&main);
    let d = diags
        .iter()
        .find(|d| d["message"].as_str().unwrap_or("").contains("relya"))
        .unwrap_or_else(|| panic!("no diagnostic about `relya`: {diags:?}"));
    assert_eq!(d["severity"], 1, "{d}");
    assert_eq!(d["source"], "sipc");
    assert_eq!(d["range"]["start"]["line"], 2);
    assert_eq!(d["range"]["start"]["character"], utf16_len(prefix));
    assert_eq!(d["range"]["start"]["character"], 28);
    assert_eq!(d["range"]["end"]["character"], 28 + 5);

    // Fixing it clears the diagnostics.
    let fixed = broken.replace("relya", "relay");
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": main, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    assert_eq!(s.diagnostics(&main), Vec::<Value>::new());

    // Hover on a builtin shows its signature and the catalog's doc.
    let h = s.at("textDocument/hover", &main, 2, 30);
    let text = h["contents"]["value"].as_str().unwrap_or_else(|| panic!("hover: {h}"));
    let relay = sipc::sema::builtins::function("relay").expect("relay").1;
    assert!(text.contains("relay(destination?: str) -> bool"), "{text}");
    assert!(text.contains(relay.doc), "{text}");

    // Hover on a pseudo-variable.
    let pv_doc = "request_route {\n    $du = $ru;\n    relay();\n}\n";
    let pv = uri(&dir, "pv.route");
    s.open(&pv, pv_doc);
    s.diagnostics(&pv);
    let h = s.at("textDocument/hover", &pv, 1, 11);
    let text = h["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("Request URI"), "{h}");

    // Completion in a reply_route offers only what may run there.
    let reply = uri(&dir, "reply.route");
    s.open(&reply, "request_route {\n    relay();\n}\nreply_route {\n    re\n}\n");
    s.diagnostics(&reply);
    let items = s.at("textDocument/completion", &reply, 4, 6);
    let labels: Vec<&str> =
        items.as_array().expect("items").iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(labels.contains(&"remove_hf"), "{labels:?}");
    assert!(labels.contains(&"return"), "{labels:?}");
    assert!(!labels.contains(&"reply"), "reply() is not allowed in reply_route: {labels:?}");
    assert!(!labels.contains(&"relay"), "relay() is not allowed in reply_route: {labels:?}");
    // … and pseudo-variables after `$`, also in a half-typed file.
    let half = uri(&dir, "half.route");
    s.open(&half, "request_route {\n    if $\n");
    let diags = s.diagnostics(&half);
    assert!(!diags.is_empty(), "a half-typed file has errors");
    let items = s.at("textDocument/completion", &half, 1, 8);
    let labels: Vec<&str> =
        items.as_array().expect("items").iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(labels.contains(&"$ru") && labels.contains(&"$hdr(name)"), "{labels:?}");
    assert!(!labels.contains(&"$rs"), "$rs is reply-side only: {labels:?}");

    s.shutdown();
}

#[test]
fn definition_references_symbols_and_formatting() {
    let inc = "# Relays the request.\nroute RELAY {\n    relay();\n    exit;\n}\n";
    let main_text = "include \"inc.route\";\nconst HOPS = 10;\n\nrequest_route {\n    if !maxfwd_ok(HOPS) {\n        route(LOCAL);\n    }\n    route(RELAY);\n}\n\nroute LOCAL {\n    reply(404, \"Not here\");\n    exit;\n}\n";
    let dir = scratch("nav", &[("inc.route", inc), ("main.route", main_text)]);
    let main = uri(&dir, "main.route");
    let inc_uri = uri(&dir, "inc.route");
    let mut s = Server::start();
    s.open(&main, main_text);
    assert_eq!(s.diagnostics(&main), Vec::<Value>::new());

    // A route in the same file.
    let locs = s.at("textDocument/definition", &main, 5, 16);
    assert_eq!(locs[0]["uri"], main, "{locs}");
    assert_eq!(locs[0]["range"]["start"], json!({ "line": 10, "character": 6 }));
    // A route in an included file, with its comment on hover.
    let locs = s.at("textDocument/definition", &main, 7, 12);
    assert_eq!(locs[0]["uri"], inc_uri, "{locs}");
    assert_eq!(locs[0]["range"]["start"], json!({ "line": 1, "character": 6 }));
    let h = s.at("textDocument/hover", &main, 7, 12);
    assert!(h["contents"]["value"].as_str().unwrap_or("").contains("Relays the request."), "{h}");
    // A constant, and its references (declaration included).
    let locs = s.at("textDocument/definition", &main, 4, 19);
    assert_eq!(locs[0]["range"]["start"], json!({ "line": 1, "character": 6 }));
    let refs = s.at("textDocument/references", &main, 1, 7);
    assert_eq!(refs.as_array().map(Vec::len), Some(2), "{refs}");
    // The include itself leads to the file.
    let locs = s.at("textDocument/definition", &main, 0, 12);
    assert_eq!(locs[0]["uri"], inc_uri, "{locs}");

    let symbols =
        s.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": main } }));
    let names: Vec<&str> =
        symbols.as_array().expect("symbols").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["inc.route", "HOPS", "request_route", "LOCAL"]);

    // Formatting: one edit with the formatter's output; none when formatted.
    let messy = uri(&dir, "messy.route");
    s.open(&messy, "request_route{relay();}\n");
    s.diagnostics(&messy);
    let fmt = json!({ "textDocument": { "uri": messy }, "options": { "tabSize": 4, "insertSpaces": true } });
    let edits = s.request("textDocument/formatting", fmt.clone());
    assert_eq!(edits[0]["newText"], "request_route {\n    relay();\n}\n", "{edits}");
    let fmt_main = json!({ "textDocument": { "uri": main }, "options": { "tabSize": 4, "insertSpaces": true } });
    assert_eq!(s.request("textDocument/formatting", fmt_main), json!([]));

    // Editing an included file updates the diagnostics of the including one
    // (every earlier notification has been read: the server answers in order).
    s.pending.clear();
    s.open(&inc_uri, &inc.replace("RELAY", "RELAY2"));
    s.diagnostics(&inc_uri);
    let d = s.diagnostics(&main);
    assert!(d.iter().any(|d| d["message"].as_str().unwrap_or("").contains("RELAY")), "{d:?}");

    s.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every request at every position of every example and UI test, and at
/// the end of every prefix of them (a file being typed), answers without
/// panicking; in-process, through the library.
#[test]
fn every_position_of_every_file_is_answered() {
    use sipc::lsp::document::{Analysis, OpenDocs};
    use sipc::lsp::{completion, hover, navigation, symbols};

    fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "route") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    files(std::path::Path::new("examples"), &mut all);
    files(std::path::Path::new("tests/ui"), &mut all);
    let docs = OpenDocs::default();
    for path in all {
        let text = std::fs::read_to_string(&path).expect("readable");
        let abs = std::fs::canonicalize(&path).expect("path");
        let uri = lsp_types::Url::from_file_path(&abs).expect("uri");
        let a = Analysis::build(&uri, &text, &docs);
        symbols::document_symbols(&a.files[0]);
        // Every offset of small files, a sample of large ones.
        let step = if text.len() > 3000 { 7 } else { 1 };
        for offset in (0..=text.len()).step_by(step).filter(|&o| text.is_char_boundary(o)) {
            hover::hover(&a, offset);
            completion::complete(&a, offset);
            navigation::definition(&a, offset);
            navigation::references(&a, offset, true);
        }
        for (i, _) in text.match_indices('\n').step_by(3) {
            let prefix = &text[..i];
            let a = Analysis::build(&uri, prefix, &docs);
            completion::complete(&a, prefix.len());
            symbols::document_symbols(&a.files[0]);
        }
    }
}
