//! HTML escaping for the HTML report and its SVG chart: every text that comes from a run goes
//! through here, so a step that prints `<script>` shows it as text.

/// Escapes text for HTML (and SVG) element content and quoted attribute values.
pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            escape_html(r#"<script>alert('x & "y"')</script>"#),
            "&lt;script&gt;alert(&#39;x &amp; &quot;y&quot;&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape_html("plain ••• text"), "plain ••• text");
    }
}
