//! Byte offsets to LSP positions and back.
//!
//! Everything inside sipc speaks byte offsets; LSP positions are a line and
//! a column counted in UTF-16 code units. A `LineIndex` is built once per
//! document version and converts at the boundary only, so a `café ☎` or an
//! emoji before an error moves the column the way the editor counts it.

use lsp_types::{Position, Range};

/// Line starts of one text, for conversions in both directions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts
            .extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// The position of a byte offset (clamped to the text).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let character: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position { line: line as u32, character: character as u32 }
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range { start: self.position(text, start), end: self.position(text, end) }
    }

    /// The byte offset of a position; a column past the end of its line
    /// means the end of the line, a line past the end the end of the text.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.line_starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self.line_starts.get(pos.line as usize + 1).map_or(text.len(), |&e| e - 1);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns() {
        let text = "# café ☎ 😀\nx;";
        let idx = LineIndex::new(text);
        let emoji_end = text.find('\n').unwrap();
        // "# café ☎ " is 9 UTF-16 units; the emoji is 2 more.
        assert_eq!(idx.position(text, emoji_end), Position::new(0, 11));
        assert_eq!(idx.offset(text, Position::new(0, 11)), emoji_end);
        assert_eq!(idx.position(text, emoji_end + 1), Position::new(1, 0));
        assert_eq!(idx.offset(text, Position::new(1, 1)), emoji_end + 2);
        assert_eq!(idx.offset(text, Position::new(1, 99)), text.len());
        assert_eq!(idx.offset(text, Position::new(7, 0)), text.len());
    }
}
