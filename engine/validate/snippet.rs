//! One declared snippet (`snippets:`, SPEC §2). Data only: inserting and checking them is in
//! `snippets.rs`.

use crate::document::Spanned;

/// One declared snippet.
#[derive(Debug, Clone)]
pub(super) struct Snippet {
    pub name: Spanned<String>,
    pub text: Spanned<String>,
    pub used: bool,
}
