//! The layout rules, applied to tokens and comments in source order.
//!
//! - four spaces per block level; `case` labels one level inside `switch`,
//!   their statements one more;
//! - one statement or item per line: a line ends after `;`, `{`, `}` and a
//!   case label's `:`; `} else` stays on one line; an empty block is `{}`;
//! - one space between tokens, none inside parentheses, before `,` `;` `:`
//!   and `)`, after a unary `!` or `-`, or between a called name and `(`;
//! - at most one blank line is kept where the source had any, never right
//!   after `{` or before `}`;
//! - comments stay: a trailing comment stays on its line after one space
//!   (trailing `#`/`//` comments of consecutive lines line up in one column), a
//!   comment on its own line stays on its own line (re-indented; the inside
//!   of a block comment is kept verbatim). A comment that breaks a statement
//!   continues it on the next line one level deeper.
//!
//! Every decision depends only on the tokens and on whether a newline
//! separated a comment from its neighbours, which the output preserves; that
//! is what makes formatting idempotent.

use crate::syntax::lexer::Spanned;
use crate::syntax::token::Tok;
use crate::syntax::trivia::Comment;

const INDENT: &str = "    ";

#[derive(Debug, Clone, Copy)]
enum Element<'a> {
    Token(Tok<'a>),
    Comment { block: bool },
}

#[derive(Debug, Clone, Copy, Default)]
struct Block {
    switch: bool,
    in_case: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Nothing yet (start of file).
    Nothing,
    Token,
    /// A `{` just emitted: an immediate `}` closes it on the same line.
    Open,
    Comment,
}

struct Printer<'s> {
    out: String,
    blocks: Vec<Block>,
    /// Extra indentation of a statement broken by a comment.
    continuation: bool,
    /// The next element starts a new line.
    need_newline: bool,
    /// Nothing has been written on the current line yet.
    line_empty: bool,
    last: Last,
    prev_tok: Option<Tok<'s>>,
    /// The last token was a unary `!` or `-`: no space after it.
    unary: bool,
    /// A `switch` was seen; its body is the next `{`.
    switch_pending: bool,
    /// Where trailing line comments start in `out` (at their one space).
    trailing: Vec<usize>,
}

/// Prints `tokens` and `comments` (both from `src`) in the canonical layout.
pub fn print(src: &str, tokens: &[Spanned<'_>], comments: &[Comment]) -> String {
    let mut elems: Vec<(usize, usize, Element<'_>)> = Vec::with_capacity(tokens.len());
    elems.extend(tokens.iter().map(|&(s, t, e)| (s, e, Element::Token(t))));
    elems.extend(comments.iter().map(|c| (c.start, c.end, Element::Comment { block: c.block })));
    elems.sort_by_key(|e| e.0);
    let mut p = Printer {
        out: String::with_capacity(src.len() + src.len() / 8),
        blocks: Vec::new(),
        continuation: false,
        need_newline: false,
        line_empty: true,
        last: Last::Nothing,
        prev_tok: None,
        unary: false,
        switch_pending: false,
        trailing: Vec::new(),
    };
    let mut prev_end = 0;
    for (i, &(start, end, elem)) in elems.iter().enumerate() {
        let newlines = src[prev_end..start].bytes().filter(|&b| b == b'\n').count();
        prev_end = end;
        match elem {
            Element::Token(t) => p.token(t, &src[start..end], newlines),
            Element::Comment { block } => {
                let next = elems[i + 1..].iter().find_map(|e| match e.2 {
                    Element::Token(t) => Some(t),
                    Element::Comment { .. } => None,
                });
                p.comment(src[start..end].trim_end(), block, newlines, next);
            }
        }
    }
    if !p.out.is_empty() {
        p.out.push('\n');
    }
    align_trailing(&p.out, &p.trailing)
}

/// Lines each ending in a trailing line comment, one after the other, get
/// their comments in one column (one space after the longest code).
fn align_trailing(out: &str, trailing: &[usize]) -> String {
    // (line start, comment start) for each trailing comment.
    let mut marks: Vec<(usize, usize)> =
        trailing.iter().map(|&at| (out[..at].rfind('\n').map_or(0, |i| i + 1), at)).collect();
    marks.dedup_by_key(|m| m.0);
    let mut pad = vec![0usize; marks.len()];
    let mut i = 0;
    while i < marks.len() {
        // A group: each next line starts right after the previous one ends.
        let mut j = i + 1;
        while j < marks.len() {
            let prev_end =
                out[marks[j - 1].1..].find('\n').map_or(out.len(), |k| marks[j - 1].1 + k);
            if prev_end + 1 != marks[j].0 {
                break;
            }
            j += 1;
        }
        let width = |m: &(usize, usize)| out[m.0..m.1].chars().count();
        let max = marks[i..j].iter().map(width).max().unwrap_or(0);
        for k in i..j {
            pad[k] = max - width(&marks[k]);
        }
        i = j;
    }
    let mut result = String::with_capacity(out.len() + pad.iter().sum::<usize>());
    let mut last = 0;
    for (m, n) in marks.iter().zip(pad) {
        result.push_str(&out[last..m.1]);
        result.extend(std::iter::repeat_n(' ', n));
        last = m.1;
    }
    result.push_str(&out[last..]);
    result
}

impl<'s> Printer<'s> {
    fn level(&self) -> usize {
        self.blocks.iter().map(|b| 1 + usize::from(b.in_case)).sum::<usize>()
            + usize::from(self.continuation)
    }

    /// Whether the current statement has begun (a comment inside it breaks it).
    fn mid_statement(&self) -> bool {
        match self.prev_tok {
            None => false,
            Some(Tok::Semi | Tok::LBrace | Tok::RBrace) => false,
            Some(Tok::Colon) => !self.blocks.last().is_some_and(|b| b.switch),
            Some(_) => true,
        }
    }

    fn newline(&mut self, blank: bool, level: usize) {
        if !self.out.is_empty() {
            self.out.push('\n');
            if blank && self.last != Last::Open {
                self.out.push('\n');
            }
        }
        for _ in 0..level {
            self.out.push_str(INDENT);
        }
        self.line_empty = true;
        self.need_newline = false;
    }

    fn token(&mut self, tok: Tok<'s>, text: &str, newlines: usize) {
        let blank = newlines >= 2;
        match tok {
            Tok::RBrace => {
                let empty = self.last == Last::Open;
                self.blocks.pop();
                self.continuation = false;
                if !empty {
                    self.newline(false, self.level());
                }
            }
            Tok::Case | Tok::Default if self.blocks.last().is_some_and(|b| b.switch) => {
                if let Some(b) = self.blocks.last_mut() {
                    b.in_case = false;
                }
                self.newline(blank, self.level());
            }
            Tok::Else if self.prev_tok == Some(Tok::RBrace) && self.last == Last::Token => {
                self.out.push(' ');
                self.need_newline = false;
            }
            _ if self.need_newline || (self.last == Last::Comment && newlines > 0) => {
                let mid = self.mid_statement();
                self.continuation = self.continuation || mid;
                self.newline(blank, self.level());
            }
            _ if self.line_empty => {}
            _ => {
                if self.space_before(tok) {
                    self.out.push(' ');
                }
            }
        }
        self.out.push_str(text);
        self.line_empty = false;
        self.unary = matches!(tok, Tok::Bang)
            || (tok == Tok::Minus && !self.prev_tok.is_some_and(ends_value));
        self.last = Last::Token;
        match tok {
            Tok::Switch => self.switch_pending = true,
            Tok::LBrace => {
                self.blocks.push(Block { switch: self.switch_pending, in_case: false });
                self.switch_pending = false;
                self.continuation = false;
                self.need_newline = true;
                self.last = Last::Open;
            }
            Tok::RBrace | Tok::Semi => {
                self.continuation = false;
                self.need_newline = true;
            }
            Tok::Colon => {
                if let Some(b) = self.blocks.last_mut().filter(|b| b.switch) {
                    b.in_case = true;
                    self.continuation = false;
                    self.need_newline = true;
                }
            }
            _ => {}
        }
        self.prev_tok = Some(tok);
    }

    fn space_before(&self, tok: Tok<'_>) -> bool {
        if self.last == Last::Comment {
            return true;
        }
        if self.unary {
            return false;
        }
        !matches!(
            (self.prev_tok, tok),
            (_, Tok::Semi | Tok::Comma | Tok::RParen | Tok::Colon)
                | (Some(Tok::LParen), _)
                | (Some(Tok::Ident(_) | Tok::Route), Tok::LParen)
        )
    }

    fn comment(&mut self, text: &str, block: bool, newlines: usize, next: Option<Tok<'_>>) {
        let own_line = self.last == Last::Nothing || newlines > 0 || self.line_empty;
        if own_line {
            let mid = self.mid_statement();
            self.continuation = self.continuation || mid;
            // A comment above a case label lines up with the label.
            let mut level = self.level();
            if matches!(next, Some(Tok::Case | Tok::Default))
                && self.blocks.last().is_some_and(|b| b.switch && b.in_case)
            {
                level -= 1;
            }
            self.newline(newlines >= 2, level);
        } else {
            if !block {
                self.trailing.push(self.out.len());
            }
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.line_empty = false;
        self.last = Last::Comment;
        // After a line comment the line is over; after a block comment it is
        // over when it was in the source (the next element decides).
        self.need_newline = self.need_newline || !block;
    }
}

/// Tokens after which a `-` is binary.
fn ends_value(t: Tok<'_>) -> bool {
    matches!(
        t,
        Tok::Ident(_)
            | Tok::Int(_)
            | Tok::Duration(_)
            | Tok::Ip(_)
            | Tok::Str(_)
            | Tok::Pv(_)
            | Tok::RParen
            | Tok::True
            | Tok::False
    )
}
