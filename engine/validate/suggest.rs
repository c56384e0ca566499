//! "Did you mean" hints for misspelled names.

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, candidate)| *score >= 0.8 && *candidate != word)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("migrat", ["migrate", "deploy"]), Some("migrate"));
        assert_eq!(suggest("rollbak", ["rollback", "run"]), Some("rollback"));
        assert_eq!(suggest("zzz", ["migrate", "deploy"]), None);
    }
}
