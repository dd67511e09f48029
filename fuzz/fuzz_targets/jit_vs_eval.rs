//! Differential fuzzing of the code generator: the input bytes steer a small
//! generator of route programs (statements over pseudo-variables, `$var`s,
//! string and int builtins, header edits, switch, bounded loops, regexes,
//! replies) and pick a request; the program runs through the JIT and the
//! reference evaluator, and both must make the same decision and the same
//! edits (compared as serialized messages).
#![no_main]

use std::net::SocketAddr;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sipc::codegen::{Evaluator, Program};
use sipc::proxy::{RequestContext, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{EditedMessage, Message};

struct Gen<'a> {
    data: &'a [u8],
    at: usize,
}

impl Gen<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[usize::from(self.byte()) % xs.len()]
    }

    fn int(&mut self, depth: u8) -> String {
        match self.byte() % if depth == 0 { 3 } else { 7 } {
            0 => format!("{}", i64::from(self.byte() as i8)),
            1 => "$var(a)".into(),
            2 => format!("str_len({})", self.str(0)),
            3 => format!("({} {} {})", self.int(depth - 1), self.pick(&["+", "-", "*", "/", "%"]), self.int(depth - 1)),
            4 => format!("to_int({})", self.str(depth - 1)),
            5 => format!("remove_hf(\"{}\")", self.pick(&["X-A", "User-Agent", "Subject"])),
            _ => "$cs".into(),
        }
    }

    fn str(&mut self, depth: u8) -> String {
        match self.byte() % if depth == 0 { 5 } else { 9 } {
            0 => format!("\"{}\"", self.pick(&["", "bob", "Alice", "x y", "sip:a@b", "42"])),
            1 => self.pick(&["$rU", "$fU", "$tU", "$rd", "$rm", "$ua", "$ci", "$ru"]).into(),
            2 => "$var(s)".into(),
            3 => format!("$hdr({})", self.pick(&["User-Agent", "X-A", "Subject", "Call-ID"])),
            4 => "\"$rU at $rd via $var(s)\"".into(),
            5 => format!("({} + {})", self.str(depth - 1), self.str(depth - 1)),
            6 => format!("str_lower({})", self.str(depth - 1)),
            7 => format!("str_substr({}, {}, {})", self.str(depth - 1), self.int(0), self.int(0)),
            _ => format!("to_str({})", self.int(depth - 1)),
        }
    }

    fn cond(&mut self, depth: u8) -> String {
        match self.byte() % if depth == 0 { 5 } else { 8 } {
            0 => format!("{} {} {}", self.str(1), self.pick(&["==", "!="]), self.str(1)),
            1 => format!("{} {} {}", self.int(1), self.pick(&["<", ">", "<=", ">=", "=="]), self.int(1)),
            2 => format!(
                "is_method(\"{}\")",
                self.pick(&["INVITE", "OPTIONS", "BYE", "INVITE|BYE", " ACK | BYE ", "FOO|INVITE", "invite", "BYE|", "PUBLISH|NOTIFY|OPTIONS"])
            ),
            3 => format!("{} =~ \"{}\"", self.str(0), self.pick(&["^b", "o+", "(a|b)c?", "^$", "[0-9]+"])),
            4 => self
                .pick(&[
                    "has_to_tag()",
                    "is_present_hf(\"X-A\")",
                    "loose_route()",
                    "isflagset(F1)",
                    "isflagset(F2)",
                    "is_myself($ru)",
                    "is_myself($fu)",
                    "sanity_check()",
                    "t_precheck_trans()",
                ])
                .into(),
            5 => format!("!({})", self.cond(depth - 1)),
            6 => format!("({} && {})", self.cond(depth - 1), self.cond(depth - 1)),
            _ => format!("({} || {})", self.cond(depth - 1), self.cond(depth - 1)),
        }
    }

    fn stmts(&mut self, depth: u8, n: u8) -> String {
        (0..n).map(|_| self.stmt(depth)).collect::<Vec<_>>().join("\n")
    }

    fn stmt(&mut self, depth: u8) -> String {
        match self.byte() % if depth == 0 { 9 } else { 13 } {
            0 => format!("$var(a) = {};", self.int(2)),
            1 => format!("$var(s) = {};", self.str(2)),
            2 => format!("$ru = \"sip:{}@192.0.2.{}\";", self.pick(&["bob", "carol", "x"]), self.byte() % 9 + 1),
            3 => format!("append_hf(\"X-A: {}\\r\\n\");", self.pick(&["1", "two", "$rU"])),
            4 => "record_route();".into(),
            5 => format!("$du = \"sip:192.0.2.{}:5080\";", self.byte() % 9 + 1),
            6 => format!("replace_hf(\"Subject\", {});", self.str(1)),
            7 => format!("if {} {{ reply({}, \"R\"); exit; }}", self.cond(1), 400 + u16::from(self.byte() % 200)),
            8 => "$var(i) = 0;\nwhile $var(i) < 3 { $var(i) = $var(i) + 1; $var(a) = $var(a) + $var(i); }".into(),
            9 => {
                let (c, t, e) = (self.cond(2), self.stmts(depth - 1, 2), self.stmts(depth - 1, 2));
                format!("if {c} {{\n{t}\n}} else {{\n{e}\n}}")
            }
            10 => {
                let (a, b) = (self.stmts(depth - 1, 2), self.stmts(depth - 1, 1));
                format!("switch $rU {{\ncase \"bob\":\n{a}\nbreak;\ndefault:\n{b}\n}}")
            }
            11 => format!("{}({});", self.pick(&["setflag", "resetflag"]), self.pick(&["F1", "F2"])),
            _ => format!("if {} {{ drop; }}", self.cond(1)),
        }
    }
}

const MESSAGES: [&str; 3] = [
    "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\nFrom: Alice <sip:alice@example.org>;tag=1\r\nCall-ID: c1@example.org\r\nCSeq: 7 INVITE\r\nUser-Agent: fuzz/1.0\r\nSubject: hi\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:carol@192.0.2.50 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb\r\nMax-Forwards: 10\r\nRoute: <sip:192.0.2.9;lr>\r\nTo: <sip:carol@example.com>;tag=9\r\nFrom: <sip:42@example.org>;tag=2\r\nCall-ID: c2\r\nCSeq: 8 BYE\r\nX-A: 5\r\nContent-Length: 0\r\n\r\n",
    "OPTIONS sip:x@example.com SIP/2.0\r\nv: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKc\r\nt: <sip:x@example.com>\r\nf: <sip:y@example.com>;tag=3\r\ni: c3\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
];

fn context(text: &str) -> RequestContext {
    RequestContext::new(EditedMessage::new(Message::parse(Bytes::from(text.to_owned())).unwrap()), "192.0.2.1:5060".parse::<SocketAddr>().unwrap(), Transport::Udp)
}

fuzz_target!(|data: &[u8]| {
    let mut g = Gen { data, at: 0 };
    let msg = MESSAGES[usize::from(g.byte()) % MESSAGES.len()];
    let n = g.byte() % 6 + 1;
    let body = g.stmts(2, n);
    let src = format!(
        "listen udp 127.0.0.1:5060;\ndomain \"example.com\";\nflag F1;\nflag F2;\n\
         request_route {{\n{body}\nif isflagset(F1) {{ append_hf(\"X-F: 1\\r\\n\"); }}\nforward();\n}}\n"
    );
    let out = sema::check_source("fuzz.route", &src, &Options::default());
    if out.errors() > 0 {
        return;
    }
    let jit = Program::compile(&out.program).expect("a checked program compiles");
    let eval = Evaluator::new(&out.program).expect("a checked program evaluates");
    let (mut a, mut b) = (context(msg), context(msg));
    let (da, db) = (jit.run(&mut a), eval.run(&mut b));
    assert_eq!(da, db, "decision differs for:\n{src}");
    assert_eq!(a.destination, b.destination, "$du differs for:\n{src}");
    assert_eq!(a.record_route, b.record_route, "record_route differs for:\n{src}");
    assert_eq!(a.msg.serialize(), b.msg.serialize(), "edits differ for:\n{src}");
});
