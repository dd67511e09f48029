//! Comments, recovered from the gaps between tokens.
//!
//! The lexer drops comments so the parser never sees them, and the hot path
//! (checking, reloading) should not pay for keeping them. The formatter and
//! the language server need them, so this separate pass reads them back: the
//! text between two consecutive tokens is only whitespace and comments, so
//! scanning those gaps finds every comment without touching the lexer.

use super::lexer::Spanned;

/// One comment: its byte range, and whether it is a `/* … */` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    pub start: usize,
    pub end: usize,
    pub block: bool,
}

/// Every comment of `src`, in order, given the tokens the lexer produced for it.
pub fn comments(src: &str, tokens: &[Spanned<'_>]) -> Vec<Comment> {
    let mut out = Vec::new();
    let mut prev_end = 0;
    for &(start, _, end) in tokens {
        scan_gap(src, prev_end, start, &mut out);
        prev_end = end;
    }
    scan_gap(src, prev_end, src.len(), &mut out);
    out
}

fn scan_gap(src: &str, from: usize, to: usize, out: &mut Vec<Comment>) {
    let bytes = src.as_bytes();
    let mut i = from;
    while i < to {
        match bytes[i] {
            b'#' => i = line_comment(src, i, to, out),
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = line_comment(src, i, to, out),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..to].find("*/").map_or(to, |j| i + 2 + j + 2);
                out.push(Comment { start: i, end, block: true });
                i = end;
            }
            _ => i += 1,
        }
    }
}

fn line_comment(src: &str, start: usize, to: usize, out: &mut Vec<Comment>) -> usize {
    let end = src[start..to].find('\n').map_or(to, |j| start + j);
    out.push(Comment { start, end, block: false });
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::lexer::lex;
    use crate::syntax::span::FileId;

    #[test]
    fn finds_every_kind_of_comment() {
        let src = "# a\nx = 1; // b\n/* c\n d */ y; /* e */";
        let (toks, _) = lex(FileId(0), src);
        let texts: Vec<&str> = comments(src, &toks).iter().map(|c| &src[c.start..c.end]).collect();
        assert_eq!(texts, ["# a", "// b", "/* c\n d */", "/* e */"]);
    }

    #[test]
    fn hash_inside_a_string_is_not_a_comment() {
        let src = "x = \"#no\"; # yes";
        let (toks, _) = lex(FileId(0), src);
        assert_eq!(comments(src, &toks).len(), 1);
    }
}
