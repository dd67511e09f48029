//! How deeply `route(…)` calls can nest, known before the program runs.
//!
//! Recursion is a check error, so the calls form an acyclic graph and the
//! deepest nesting any entry route can reach is a compile-time fact. When
//! it is within [`MAX_DEPTH`](crate::runtime::MAX_DEPTH) the run-time depth
//! guard can never trip, and the code generator leaves it out of every call
//! site (two runtime calls per `route(…)` saved); otherwise every call site
//! keeps it.

use crate::sema::ir::{CheckedProgram, ExprKind, visit_exprs};

/// The longest chain of nested `route(…)` calls in `prog` (0 when no
/// route calls another); `usize::MAX` if the calls form a cycle, which the
/// checker rejects, so the guard stays in for anything unexpected.
pub fn max_call_depth(prog: &CheckedProgram) -> usize {
    let callees: Vec<Vec<usize>> = prog
        .routes
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            visit_exprs(&r.body, &mut |e| {
                if let ExprKind::CallRoute(id) = e.kind {
                    out.push(id as usize);
                }
            });
            out
        })
        .collect();
    // 0: not visited, 1: on the DFS stack, 2: done.
    let mut state = vec![0u8; callees.len()];
    let mut depth = vec![0usize; callees.len()];
    fn visit(r: usize, callees: &[Vec<usize>], state: &mut [u8], depth: &mut [usize]) -> usize {
        match state[r] {
            1 => return usize::MAX,
            2 => return depth[r],
            _ => {}
        }
        state[r] = 1;
        let mut d = 0;
        for &c in &callees[r] {
            let below = if c < callees.len() { visit(c, callees, state, depth) } else { 0 };
            d = d.max(below.saturating_add(1));
        }
        state[r] = 2;
        depth[r] = d;
        d
    }
    (0..callees.len()).map(|r| visit(r, &callees, &mut state, &mut depth)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::max_call_depth;
    use crate::sema::{self, Options};

    fn depth(src: &str) -> usize {
        let out = sema::check_source("t.route", src, &Options::default());
        assert_eq!(out.errors(), 0);
        max_call_depth(&out.program)
    }

    #[test]
    fn counts_the_longest_chain() {
        assert_eq!(depth("request_route { exit; }"), 0);
        let src = "route A { route(B); }\nroute B { if route(C) { exit; } }\nroute C { return; }\n\
                   request_route { route(A); route(C); }";
        assert_eq!(depth(src), 3);
    }

    #[test]
    fn a_chain_deeper_than_the_guard_is_seen() {
        let mut src = String::from("request_route { route(R0); }\n");
        for i in 0..120 {
            src.push_str(&format!("route R{i} {{ route(R{}); }}\n", i + 1));
        }
        src.push_str("route R120 { exit; }\n");
        assert!(depth(&src) > crate::runtime::MAX_DEPTH as usize);
    }
}
