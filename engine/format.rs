//! How durations read as text, in one place. Each form has its own audience: `tenths` for
//! compact table columns, `elapsed` for report offsets that must stay precise for quick steps,
//! `written` for durations as a person writes them in a runbook, and `in_message` for error
//! messages. Nothing here imports another engine module.

use std::time::Duration;

/// A compact table form with one decimal: `0.0s`, `1.2s`, `150.3s`.
pub(crate) fn tenths(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Milliseconds as seconds for a report: `0.004s`, `12.5s`, `2m 03s`, `1h 02m`.
pub(crate) fn elapsed(milliseconds: u64) -> String {
    let total = milliseconds / 1000;
    match total {
        0..10 => format!("{:.3}s", milliseconds as f64 / 1000.0),
        10..60 => format!("{:.1}s", milliseconds as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", total / 60, total % 60),
        _ => format!("{}h {:02}m", total / 3600, total % 3600 / 60),
    }
}

/// A duration as written in runbooks, exactly: `30s`, `1h 30m`, `1s 500ms`.
pub(crate) fn written(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Like `written`, with anything below a millisecond dropped: a measured time, where
/// nanoseconds are noise (`1s 234ms`, not `1s 234ms 567us 89ns`).
pub(crate) fn written_to_millisecond(duration: Duration) -> String {
    let milliseconds = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    written(Duration::from_millis(milliseconds))
}

/// A duration as a person reads it in a message: `250ms`, `1.5s`, `2m 5s`. Below a minute
/// the tenths are rounded up, so a limit is never shown shorter than it is.
pub(crate) fn in_message(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else if duration < Duration::from_secs(60) {
        let tenths = duration.as_millis().div_ceil(100);
        match tenths % 10 {
            0 => format!("{}s", tenths / 10),
            fraction => format!("{}.{fraction}s", tenths / 10),
        }
    } else {
        written(Duration::from_secs(duration.as_secs()))
    }
}

/// OS error texts start with a capital (`Connection refused`); messages here do not.
pub(crate) fn lowercase_first(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) if !characters.clone().next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(characters).collect()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_keep_one_decimal() {
        assert_eq!(tenths(Duration::ZERO), "0.0s");
        assert_eq!(tenths(Duration::from_millis(1_249)), "1.2s");
        assert_eq!(tenths(Duration::from_millis(150_300)), "150.3s");
    }

    #[test]
    fn tenths_of_milliseconds_read_as_the_milliseconds_divided() {
        // `history` passes whole milliseconds; it used to divide them by 1000 itself.
        for milliseconds in (0..2_000_000).step_by(7) {
            assert_eq!(
                tenths(Duration::from_millis(milliseconds)),
                format!("{:.1}s", milliseconds as f64 / 1000.0)
            );
        }
    }

    #[test]
    fn elapsed_grows_coarser_with_length() {
        assert_eq!(elapsed(4), "0.004s");
        assert_eq!(elapsed(9_999), "9.999s");
        assert_eq!(elapsed(12_500), "12.5s");
        assert_eq!(elapsed(123_000), "2m 03s");
        assert_eq!(elapsed(3_720_000), "1h 02m");
    }

    #[test]
    fn written_reads_like_a_runbook() {
        assert_eq!(written(Duration::from_secs(30)), "30s");
        assert_eq!(written(Duration::from_secs(5_400)), "1h 30m");
        assert_eq!(written(Duration::from_millis(1_500)), "1s 500ms");
        assert_eq!(
            written_to_millisecond(Duration::from_nanos(1_234_567_890)),
            "1s 234ms"
        );
        assert_eq!(written_to_millisecond(Duration::from_nanos(999)), "0s");
    }

    #[test]
    fn messages_round_up_to_tenths() {
        assert_eq!(in_message(Duration::from_millis(250)), "250ms");
        assert_eq!(in_message(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(in_message(Duration::from_millis(1_001)), "1.1s");
        assert_eq!(in_message(Duration::from_secs(2)), "2s");
        assert_eq!(in_message(Duration::from_millis(125_900)), "2m 5s");
    }
}
