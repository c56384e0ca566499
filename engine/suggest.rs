//! "Did you mean" hints for misspelled names, for parsing, validation and variable input
//! alike. A leaf: it uses no other engine module.

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Transposed or doubled letters (`rnu`, `rollbak`) count as one edit; similar-looking
    // longer names are caught by Jaro-Winkler.
    let edits_allowed = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .filter_map(|candidate| {
            let edits = strsim::damerau_levenshtein(word, candidate);
            let similarity = strsim::jaro_winkler(word, candidate);
            (edits <= edits_allowed || similarity >= 0.8).then_some((edits, similarity, candidate))
        })
        .min_by(|left, right| left.0.cmp(&right.0).then(right.1.total_cmp(&left.1)))
        .map(|(_, _, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("migrat", ["migrate", "deploy"]), Some("migrate"));
        assert_eq!(suggest("rollbak", ["rollback", "run"]), Some("rollback"));
        assert_eq!(suggest("zzz", ["migrate", "deploy"]), None);
        assert_eq!(suggest("rnu", ["id", "run", "needs"]), Some("run"));
    }
}
