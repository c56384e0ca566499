//! Scalar value rules shared by the validators: identifiers and durations (a literal is
//! parsed now, a template is checked as a template and parsed when its values are known).

use std::time::Duration;

use super::Diagnostic;
use crate::document::Spanned;
use crate::model::MAX_DURATION;

/// `[a-z0-9][a-z0-9_-]*`: the form of runbook names and step ids.
pub fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && characters.all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '_'
                || character == '-'
        })
}

/// Variable names are used as `vars.<name>` in templates, so they follow identifier rules.
pub fn is_var_name(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// Environment variable names as POSIX shells accept them.
pub fn is_env_name(text: &str) -> bool {
    is_var_name(text)
}

/// Parses a humantime duration (`500ms`, `30s`, `1h30m`), naming the key in the error.
#[expect(
    clippy::result_large_err,
    reason = "validation errors are rare and go straight into the diagnostics list"
)]
pub fn parse_duration(value: &Spanned<String>, key: &str) -> Result<Duration, Diagnostic> {
    let text = value.value.trim();
    let problem = match humantime::parse_duration(text) {
        Ok(duration) if duration > MAX_DURATION => {
            format!("`{key}` is too long: `{text}` (the limit is 366 days)")
        }
        // A zero limit stops every attempt at once: refused, as a zero `interval` is.
        Ok(duration) if duration.is_zero() && key.ends_with("timeout") => {
            return Err(Diagnostic::error(
                "zero-timeout",
                format!(
                    "`{key}` must be more than zero: `{text}` would stop every attempt at once"
                ),
                Some(value.position),
            )
            .with_help("leave `timeout` out for no limit, or give one such as `30s`"));
        }
        Ok(duration) => return Ok(duration),
        Err(error) => format!("`{key}` is not a duration: `{text}` ({error})"),
    };
    Err(
        Diagnostic::error("invalid-duration", problem, Some(value.position))
            .with_help("write a duration such as `500ms`, `30s`, `10m` or `1h30m`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("backup_db-2"));
        assert!(!is_identifier("Backup"));
        assert!(!is_identifier("_x"));
        assert!(!is_identifier(""));
        assert!(is_var_name("db_url"));
        assert!(!is_var_name("db-url"));
    }

    #[test]
    fn durations() {
        let spanned = |text: &str| Spanned::new(text.to_string(), Default::default());
        assert_eq!(
            parse_duration(&spanned("1h30m"), "timeout").ok(),
            Some(Duration::from_secs(5400))
        );
        assert!(parse_duration(&spanned("five minutes"), "timeout").is_err());
        assert!(parse_duration(&spanned("-1s"), "timeout").is_err());
        assert!(parse_duration(&spanned("99999999999d"), "timeout").is_err());
    }
}
