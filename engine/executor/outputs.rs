//! Reads the `$RUNBOOK_OUTPUT` file a step appended to: `key=value` lines, and multi-line
//! values as `key<<DELIM` ... `DELIM` (the GitHub Actions form).

/// The most distinct keys a step may write: beyond it the step fails (a runaway loop).
pub(crate) const MAX_OUTPUT_KEYS: usize = 1000;

/// What an output file holds: ordered `(key, value)` pairs (a later key wins, keeping the
/// place of the first) and the 1-based numbers of the lines that are neither form.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedOutputs {
    pub pairs: Vec<(String, String)>,
    pub malformed: Vec<usize>,
}

/// Parses an output file's text in one pass (keys found through an index, so 100,000 lines
/// cost what 100 do, times 1000). An unterminated multi-line value is malformed from its
/// opening line; a key written again replaces the value.
pub(crate) fn parse_outputs(text: &str) -> ParsedOutputs {
    let mut parsed = ParsedOutputs::default();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = if let Some((key, delimiter)) =
            line.split_once("<<").filter(|(key, _)| !key.contains('='))
        {
            let mut value_lines = Vec::new();
            let mut terminated = false;
            for (_, next) in lines.by_ref() {
                let next = next.strip_suffix('\r').unwrap_or(next);
                if next == delimiter {
                    terminated = true;
                    break;
                }
                value_lines.push(next);
            }
            if !terminated {
                parsed.malformed.push(number + 1);
                continue;
            }
            (key.trim().to_string(), value_lines.join("\n"))
        } else if let Some((key, value)) = line.split_once('=') {
            (key.trim().to_string(), value.to_string())
        } else {
            parsed.malformed.push(number + 1);
            continue;
        };
        if key.is_empty() {
            parsed.malformed.push(number + 1);
            continue;
        }
        match index.get(&key) {
            Some(&at) => parsed.pairs[at].1 = value,
            None => {
                index.insert(key.clone(), parsed.pairs.len());
                parsed.pairs.push((key, value));
            }
        }
    }
    parsed
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
            parse_outputs(text).pairs,
            pairs(&[
                ("file", "/tmp/a=b"),
                ("notes", "line 1\nline 2"),
                ("tag", "v1")
            ])
        );
    }

    #[test]
    fn later_keys_win_and_junk_is_reported_by_line() {
        let parsed = parse_outputs("a=1\njunk\nb=0\na=2\n=x\n\n");
        assert_eq!(parsed.pairs, pairs(&[("a", "2"), ("b", "0")]));
        assert_eq!(parsed.malformed, [2, 5]);
        let parsed = parse_outputs("ok=1\nx<<END\nnever ends\n");
        assert_eq!(parsed.pairs, pairs(&[("ok", "1")]));
        assert_eq!(parsed.malformed, [2]);
    }
}
