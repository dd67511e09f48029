//! Generated programs: random int and bool expressions over locals run
//! through the JIT and the evaluator, both checked against a Rust model of
//! the language's arithmetic (wrapping, `x / 0 == 0`, `x % 0 == 0`,
//! `MIN / -1 == MIN`, short-circuit `&&`/`||`).

use std::net::SocketAddr;

use bytes::Bytes;
use proptest::prelude::*;
use sipc::codegen::{Evaluator, Program};
use sipc::proxy::{Decision, RequestContext, Transport};
use sipc::sema::{self, Options};
use sipc::sip::{EditedMessage, Message};

#[derive(Debug, Clone)]
enum I {
    Var(usize),
    Lit(i64),
    Neg(Box<I>),
    Bin(&'static str, Box<I>, Box<I>),
}

#[derive(Debug, Clone)]
enum B {
    Cmp(&'static str, I, I),
    Not(Box<B>),
    And(Box<B>, Box<B>),
    Or(Box<B>, Box<B>),
}

const VARS: [&str; 3] = ["a", "b", "c"];

fn int_expr() -> impl Strategy<Value = I> {
    let leaf = prop_oneof![(0usize..3).prop_map(I::Var), (0i64..20).prop_map(I::Lit)];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| I::Neg(Box::new(e))),
            (prop::sample::select(vec!["+", "-", "*", "/", "%"]), inner.clone(), inner)
                .prop_map(|(op, l, r)| I::Bin(op, Box::new(l), Box::new(r))),
        ]
    })
}

fn bool_expr() -> impl Strategy<Value = B> {
    let cmp =
        (prop::sample::select(vec!["==", "!=", "<", ">", "<=", ">="]), int_expr(), int_expr())
            .prop_map(|(op, l, r)| B::Cmp(op, l, r));
    cmp.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|b| B::Not(Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| B::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| B::Or(Box::new(l), Box::new(r))),
        ]
    })
}

fn src_i(e: &I) -> String {
    match e {
        I::Var(i) => VARS[*i].to_owned(),
        I::Lit(v) => v.to_string(),
        I::Neg(x) => format!("-({})", src_i(x)),
        I::Bin(op, l, r) => format!("({} {op} {})", src_i(l), src_i(r)),
    }
}

fn src_b(e: &B) -> String {
    match e {
        B::Cmp(op, l, r) => format!("({} {op} {})", src_i(l), src_i(r)),
        B::Not(x) => format!("!({})", src_b(x)),
        B::And(l, r) => format!("({} && {})", src_b(l), src_b(r)),
        B::Or(l, r) => format!("({} || {})", src_b(l), src_b(r)),
    }
}

fn model_i(e: &I, env: &[i64; 3]) -> i64 {
    match e {
        I::Var(i) => env[*i],
        I::Lit(v) => *v,
        I::Neg(x) => model_i(x, env).wrapping_neg(),
        I::Bin(op, l, r) => {
            let (l, r) = (model_i(l, env), model_i(r, env));
            match *op {
                "+" => l.wrapping_add(r),
                "-" => l.wrapping_sub(r),
                "*" => l.wrapping_mul(r),
                "/" if r == 0 => 0,
                "/" => l.wrapping_div(r),
                "%" if r == 0 || r == -1 => 0,
                _ => l % r,
            }
        }
    }
}

fn model_b(e: &B, env: &[i64; 3]) -> bool {
    match e {
        B::Cmp(op, l, r) => {
            let (l, r) = (model_i(l, env), model_i(r, env));
            match *op {
                "==" => l == r,
                "!=" => l != r,
                "<" => l < r,
                ">" => l > r,
                "<=" => l <= r,
                _ => l >= r,
            }
        }
        B::Not(x) => !model_b(x, env),
        B::And(l, r) => model_b(l, env) && model_b(r, env),
        B::Or(l, r) => model_b(l, env) || model_b(r, env),
    }
}

fn literal(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807 - 1)".into()
    } else if v < 0 {
        format!("-{}", -v)
    } else {
        v.to_string()
    }
}

fn run(prog: &sipc::sema::ir::CheckedProgram) -> (Decision, Decision, Decision) {
    let text = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp\r\n\
                To: <sip:x@example.com>\r\nFrom: <sip:y@example.com>;tag=1\r\nCall-ID: p\r\n\
                CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let msg = EditedMessage::new(Message::parse(Bytes::from_static(text.as_bytes())).unwrap());
    let ctx = || {
        RequestContext::new(msg.clone(), SocketAddr::from(([192, 0, 2, 1], 5060)), Transport::Udp)
    };
    let jit = Program::compile(prog).unwrap();
    let eval = Evaluator::new(prog).unwrap();
    // The instrumented build (coverage, `sipc trace`) recording a trace.
    let traced = Program::compile_instrumented(prog).unwrap();
    let mut tctx = ctx();
    tctx.trace = Some(Box::default());
    let t = traced.run(&mut tctx);
    assert!(!tctx.trace.unwrap().events.is_empty());
    (jit.run(&mut ctx()), eval.run(&mut ctx()), t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn jit_evaluator_and_model_agree(
        cond in bool_expr(),
        value in int_expr(),
        env in prop::array::uniform3(prop_oneof![
            -5i64..5,
            Just(i64::MAX),
            Just(i64::MIN),
            Just(-1i64),
            any::<i64>(),
        ]),
    ) {
        let src = format!(
            "request_route {{\n let a = {};\n let b = {};\n let c = {};\n \
             if {} {{ reply(200, to_str({})); }} else {{ reply(201, to_str({})); }}\n}}\n",
            literal(env[0]), literal(env[1]), literal(env[2]),
            src_b(&cond), src_i(&value), src_i(&value),
        );
        let out = sema::check_source("prop.route", &src, &Options::default());
        prop_assume!(out.errors() == 0);
        let (jit, eval, traced) = run(&out.program);
        let want = Decision::Reply {
            code: if model_b(&cond, &env) { 200 } else { 201 },
            reason: model_i(&value, &env).to_string().into(),
        };
        prop_assert_eq!(&jit, &eval, "{}", src);
        prop_assert_eq!(&jit, &traced, "{}", src);
        prop_assert_eq!(&jit, &want, "{}", src);
    }
}
