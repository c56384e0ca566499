//! A script with its snippets inserted, and the way back from an offset in that text to an
//! offset in the script as written, so diagnostics point into the file.

use crate::document::Spanned;

/// One inserted snippet: where it sits in the expanded text, and where its `{{> name}}` was.
#[derive(Debug, Clone)]
pub(super) struct Insertion {
    pub expanded: std::ops::Range<usize>,
    pub original: std::ops::Range<usize>,
    /// The snippet's name and where its text is written.
    pub snippet: String,
    pub written_at: crate::document::Position,
}

/// The script as written, the text checked and run, and the insertions between them.
#[derive(Debug, Clone)]
pub(super) struct Expansion {
    pub original: Spanned<String>,
    pub expanded: String,
    pub insertions: Vec<Insertion>,
}

impl Expansion {
    /// The offset in the written script of byte `offset` of the expanded text: inside an
    /// inserted snippet, the start of its `{{> name}}`.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for insertion in &self.insertions {
            if offset < insertion.expanded.start {
                break;
            }
            if offset < insertion.expanded.end {
                return insertion.original.start;
            }
            shift = insertion.expanded.end as isize - insertion.original.end as isize;
        }
        offset.saturating_add_signed(-shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Position;

    #[test]
    fn offsets_map_back_around_and_inside_insertions() {
        // "a {{> x}} b" with x = "XXXXXXXXXXXX" (12 bytes, the include is 7).
        let expansion = Expansion {
            original: Spanned::new("a {{> x}} b".into(), Position::default()),
            expanded: "a XXXXXXXXXXXX b".into(),
            insertions: vec![Insertion {
                expanded: 2..14,
                original: 2..9,
                snippet: "x".into(),
                written_at: Position::default(),
            }],
        };
        assert_eq!(expansion.original_offset(0), 0);
        assert_eq!(expansion.original_offset(5), 2);
        assert_eq!(expansion.original_offset(15), 10);
    }
}
