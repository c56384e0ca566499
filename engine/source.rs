//! The runbook text as read from disk, and the mapping from YAML positions (line and
//! column, counted in characters) to byte offsets that diagnostics point at.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files larger than this are refused before parsing: a runbook is a reviewable document, and
/// a cap keeps a hostile or accidental multi-megabyte input from costing time and memory.
pub const MAX_RUNBOOK_BYTES: usize = 4 * 1024 * 1024;

/// One runbook file: its path as the user named it and its full text.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    name: String,
    text: Arc<str>,
    /// Byte offset of each line's start; `u32`, as a runbook is capped far below 4 GiB.
    line_starts: Arc<[u32]>,
    /// The file began with a byte-order mark, which `text` leaves out.
    byte_order_mark: bool,
}

/// Why a runbook file could not be turned into text.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read `{path}`")]
    Unreadable {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("`{path}` is {size} bytes, over the {cap}-byte limit for a runbook")]
    TooLarge { path: String, size: u64, cap: usize },
    #[error("`{path}` is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { path: String, offset: usize },
}

impl Source {
    /// Reads a runbook, refusing oversized and non-UTF-8 files before any parsing.
    pub fn read(path: &Path) -> Result<Source, SourceError> {
        let name = path.display().to_string();
        let unreadable = |cause| SourceError::Unreadable {
            path: name.clone(),
            cause,
        };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if metadata.is_dir() {
            let cause = std::io::Error::other("it is a directory");
            return Err(SourceError::Unreadable { path: name, cause });
        }
        if metadata.len() > MAX_RUNBOOK_BYTES as u64 {
            return Err(SourceError::TooLarge {
                path: name,
                size: metadata.len(),
                cap: MAX_RUNBOOK_BYTES,
            });
        }
        // Bounded and regular files only: `/dev/zero` has a length of 0 and never ends, and
        // a FIFO would block.
        let bytes =
            crate::bounded_read::read_bounded(path, MAX_RUNBOOK_BYTES as u64).map_err(|error| {
                match error {
                    crate::bounded_read::BoundedReadError::TooLarge { .. } => {
                        SourceError::TooLarge {
                            path: name.clone(),
                            size: metadata.len(),
                            cap: MAX_RUNBOOK_BYTES,
                        }
                    }
                    other => unreadable(other.into()),
                }
            })?;
        if bytes.len() > MAX_RUNBOOK_BYTES {
            let size = bytes.len() as u64;
            return Err(SourceError::TooLarge {
                path: name,
                size,
                cap: MAX_RUNBOOK_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|error| SourceError::NotUtf8 {
            path: name.clone(),
            offset: error.utf8_error().valid_up_to(),
        })?;
        Ok(Source::new(path.to_path_buf(), name, text))
    }

    /// Builds a source from text already in memory (tests, `init`).
    pub fn new(path: PathBuf, name: String, text: String) -> Source {
        // The parser skips a leading byte-order mark; so do we, so that offsets agree.
        let byte_order_mark = text.starts_with('\u{feff}');
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let mut line_starts = vec![0];
        line_starts.extend(
            text.match_indices('\n')
                .map(|(index, _)| u32::try_from(index + 1).unwrap_or(u32::MAX)),
        );
        Source {
            path,
            name,
            text: text.into(),
            line_starts: line_starts.into(),
            byte_order_mark,
        }
    }

    /// The file's bytes exactly as read (a byte-order mark included): what a run keeps.
    pub fn bytes(&self) -> Vec<u8> {
        let mark = if self.byte_order_mark { "\u{feff}" } else { "" };
        [mark.as_bytes(), self.text.as_bytes()].concat()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as the user wrote it, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The directory holding the runbook: the default working directory of its steps.
    pub fn directory(&self) -> PathBuf {
        let parent = self.path.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
    }

    /// Byte offset of a 1-based line and 1-based character column, clamped to the text.
    pub fn offset(&self, line: usize, column: usize) -> usize {
        if line == 0 {
            return 0;
        }
        let Some(start) = self.line_start(line) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let in_line = rest
            .char_indices()
            .take_while(|(_, character)| *character != '\n')
            .nth(column.saturating_sub(1))
            .map(|(index, _)| index);
        let line_length = rest.find('\n').unwrap_or(rest.len());
        start + in_line.unwrap_or(line_length)
    }

    /// The lines of the text from 1-based `line` on, as `str::lines` splits them: found
    /// through the line index, so looking near the end of a big file does not walk it.
    pub fn lines_from(&self, line: usize) -> std::str::Lines<'_> {
        let start = self.line_start(line.max(1)).unwrap_or(self.text.len());
        self.text.get(start..).unwrap_or_default().lines()
    }

    /// Byte offset where 1-based `line` starts, clamped to the text.
    fn line_start(&self, line: usize) -> Option<usize> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        Some((start as usize).min(self.text.len()))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&start| start as usize <= offset);
        let start = self.line_start(line).unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line, column)
    }

    /// The byte range of the scalar token that starts at `offset`: up to the end of a quoted
    /// string, or to the end of a plain scalar on its line. Used to underline a whole value.
    pub fn token_length(&self, offset: usize) -> usize {
        let rest = self.text.get(offset..).unwrap_or("");
        let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
        let quote = line
            .chars()
            .next()
            .filter(|first| *first == '"' || *first == '\'');
        let length = match quote {
            Some(quote) => line[1..].find(quote).map_or(line.len(), |end| end + 2),
            None => line.find(" #").unwrap_or(line.len()),
        };
        length.max(1).min(line.len().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::new(PathBuf::from("x.yaml"), "x.yaml".into(), text.into())
    }

    #[test]
    fn offsets_and_line_columns_agree_with_multibyte_text() {
        let source = source("a: é\nbé: x\n");
        assert_eq!(source.offset(2, 5), "a: é\nbé: ".len());
        assert_eq!(source.line_column("a: é\nbé: ".len()), (2, 5));
        assert_eq!(source.offset(9, 1), source.text().len());
    }

    #[test]
    fn lines_from_a_line_agree_with_skipping_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n\nc", "\n\n"] {
            let source = source(text);
            for line in 0..6_usize {
                let expected: Vec<&str> = text.lines().skip(line.saturating_sub(1)).collect();
                let found: Vec<&str> = source.lines_from(line).collect();
                assert_eq!(found, expected, "line {line} of {text:?}");
            }
        }
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        assert_eq!(source("\u{feff}version: 1").text(), "version: 1");
    }

    #[test]
    fn token_length_covers_quoted_and_plain_scalars() {
        let source = source("a: \"x y\" # c\nb: plain words # c\n");
        assert_eq!(source.token_length(3), 5);
        assert_eq!(source.token_length(16), "plain words".len());
    }
}
