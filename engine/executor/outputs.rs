//! Reads the `$RUNBOOK_OUTPUT` file a step appended to: `key=value` lines, and multi-line
//! values as `key<<DELIM` ... `DELIM` (the GitHub Actions form).

/// Parses an output file's text into ordered `(key, value)` pairs; a later key wins.
/// Lines that are neither form are ignored, as are unterminated multi-line values.
pub(crate) fn parse_outputs(text: &str) -> Vec<(String, String)> {
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (key, value) = if let Some((key, delimiter)) =
            line.split_once("<<").filter(|(key, _)| !key.contains('='))
        {
            let mut value_lines = Vec::new();
            let mut terminated = false;
            for next in lines.by_ref() {
                let next = next.strip_suffix('\r').unwrap_or(next);
                if next == delimiter {
                    terminated = true;
                    break;
                }
                value_lines.push(next);
            }
            if !terminated {
                continue;
            }
            (key.trim().to_string(), value_lines.join("\n"))
        } else if let Some((key, value)) = line.split_once('=') {
            (key.trim().to_string(), value.to_string())
        } else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        outputs.retain(|(existing, _)| *existing != key);
        outputs.push((key, value));
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::parse_outputs;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn simple_and_multi_line_values() {
        let text = "file=/tmp/a=b\nnotes<<EOF\nline 1\nline 2\nEOF\ntag=v1\r\n";
        assert_eq!(
            parse_outputs(text),
            pairs(&[
                ("file", "/tmp/a=b"),
                ("notes", "line 1\nline 2"),
                ("tag", "v1")
            ])
        );
    }

    #[test]
    fn later_keys_win_and_junk_is_ignored() {
        assert_eq!(parse_outputs("a=1\njunk\na=2\n=x\n"), pairs(&[("a", "2")]));
        assert_eq!(parse_outputs("x<<END\nnever ends\n"), pairs(&[]));
    }
}
