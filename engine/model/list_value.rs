//! The value of a `type: list` var (SPEC §3): written as a YAML list, `--var k=a,b,c`, or a
//! JSON array of strings in `env`/`file`/`--var`; held everywhere else as a JSON array text
//! (`["a","b"]`), which reads back as itself.

/// The items of a list value: a JSON array when the text starts with `[`, else the
/// comma-separated items, each trimmed; empty text is the empty list.
pub fn parse_list(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|error| format!("`{trimmed}` is not a JSON array: {error}"))?;
        let Some(items) = value.as_array() else {
            return Err(format!("`{trimmed}` is not a JSON array"));
        };
        return items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(text) => Ok(text.clone()),
                serde_json::Value::Number(number) => Ok(number.to_string()),
                serde_json::Value::Bool(flag) => Ok(flag.to_string()),
                other => Err(format!(
                    "a list holds strings, numbers or booleans, not `{other}`"
                )),
            })
            .collect();
    }
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(trimmed
        .split(',')
        .map(|item| item.trim().to_string())
        .collect())
}

/// The JSON array text a list value is held as.
pub fn list_text(items: &[String]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_json_and_empty() {
        assert_eq!(
            parse_list("a, b,c"),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            parse_list(r#"["a b", 2, true]"#),
            Ok(vec!["a b".into(), "2".into(), "true".into()])
        );
        assert_eq!(parse_list("  "), Ok(Vec::new()));
        assert!(parse_list("[1, [2]]").is_err());
        assert!(parse_list("[oops").is_err());
        let items = vec!["x,y".to_string(), "z".to_string()];
        assert_eq!(parse_list(&list_text(&items)), Ok(items));
    }
}
