//! One instance `id[item]` of a step with `for_each` (SPEC §13), and how its templates read
//! `item` and `item_index`. Data only: the checks are in `for_each.rs`.

use std::sync::LazyLock;

use regex::Regex;

/// The one item a step gets while the `list` var its `for_each` reads has no value yet: it is
/// checked once, as `id[item]`.
pub(super) const ANY_ITEM: &str = "item";

/// One instance of a step with `for_each`.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    /// The step's id as written.
    pub step: String,
    pub item: String,
    pub index: usize,
    /// The steps whose instance of this item it reads as its own: itself, or every step of
    /// the module call with `for_each` it belongs to.
    pub group: Vec<String>,
}

/// A `{{ ... }}` tag (no braces inside).
static TAG: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\{\{([^{}]*)\}\}").ok());
/// `item` or `item_index` as a word of a tag: a helper argument.
static WORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(^|[\s(=])(item_index|item)([\s)]|$)").ok());

/// `text` with each `step` (`steps.<id>.`) followed by `outputs.` or `status` (not by more of
/// a longer step id) replaced with `instance`.
fn replace_step(text: &str, step: &str, instance: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(step) {
        let after = &rest[found + step.len()..];
        out.push_str(&rest[..found]);
        let starts_word = rest[..found]
            .chars()
            .last()
            .is_none_or(|before| !(before.is_alphanumeric() || "_.-[]".contains(before)));
        if starts_word && (after.starts_with("outputs.") || after.starts_with("status")) {
            out.push_str(instance);
        } else {
            out.push_str(step);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// How `item` is written as a segment of a path: `[v1.2]` when it holds a `.`.
pub(super) fn item_segment(item: &str) -> String {
    if item.contains('.') {
        format!("[{item}]")
    } else {
        item.to_string()
    }
}

impl Instance {
    /// The instance's id, `id[item]`.
    pub fn id(&self) -> String {
        format!("{}[{}]", self.step, self.item)
    }

    /// `text` with this instance's values: `{{item}}` and `{{item_index}}` become the text,
    /// `item` as a helper argument a string literal, and the step's reads of its own values
    /// (`steps.<id>.outputs.*`, in its compensation) this instance's.
    pub fn substitute(&self, text: &str) -> String {
        let (Some(tag), Some(word)) = (TAG.as_ref(), WORD.as_ref()) else {
            return text.to_string();
        };
        let own: Vec<(String, String)> = self
            .group
            .iter()
            .map(|step| {
                (
                    format!("steps.{step}."),
                    format!("steps.{step}.items.{}.", item_segment(&self.item)),
                )
            })
            .collect();
        tag.replace_all(text, |captures: &regex::Captures<'_>| {
            let whole = captures.get(0).map_or("", |found| found.as_str());
            let inner = captures.get(1).map_or("", |found| found.as_str());
            match inner
                .trim_matches(|character: char| character == '~' || character.is_whitespace())
            {
                "item" => return self.item.clone(),
                "item_index" => return self.index.to_string(),
                _ => {}
            }
            let replace_words = |text: &str| {
                word.replace_all(text, |found: &regex::Captures<'_>| {
                    let value = match found.get(2).map(|word| word.as_str()) {
                        Some("item") => format!("\"{}\"", self.item),
                        _ => self.index.to_string(),
                    };
                    format!(
                        "{}{value}{}",
                        found.get(1).map_or("", |before| before.as_str()),
                        found.get(3).map_or("", |after| after.as_str())
                    )
                })
                .into_owned()
            };
            // Twice: adjacent words share the space between them.
            let mut inner = replace_words(&replace_words(inner));
            for (step, instance) in &own {
                inner = replace_step(&inner, step, instance);
            }
            if inner == captures.get(1).map_or("", |found| found.as_str()) {
                whole.to_string()
            } else {
                format!("{{{{{inner}}}}}")
            }
        })
        .into_owned()
    }
}
