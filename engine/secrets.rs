//! Secret values and their masking. A `Secret` never prints its value; a `Masker` replaces every
//! secret, and the encoded forms a script is likely to print (its lines, base64, percent-encoding,
//! JSON string escaping), with `MASK` in text, in bytes and in a stream read in arbitrary chunks.
//! Masking is exact matching: a transformation not listed on `Masker` is not recognised.

use std::fmt;
use std::sync::Arc;

/// What replaces a secret wherever output leaves the engine.
pub const MASK: &str = "••••••";

/// Below this length a value also occurs by chance in ordinary output, so masking it hides
/// innocent text too; such values are still masked, and `Masker::too_short` lists them for a
/// warning. Derived forms (lines, encodings) shorter than this are not registered at all.
pub const MIN_SECRET_LEN: usize = 4;

/// A secret value: its `Debug` and `Display` print `MASK`, so a secret that reaches a log line, an
/// error message or a panic through formatting shows nothing.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The real value, for the one place that needs it: the child's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Replaces secrets and their derived forms with `MASK`; cloning shares one matcher.
///
/// For every non-empty value it masks:
/// - the value itself, whatever its length (values shorter than `MIN_SECRET_LEN` are listed by
///   `too_short` so the caller can warn that they over-mask and may be unreliable);
/// - each line of a multi-line value (a trailing `\r` dropped);
/// - standard and URL-safe base64 of the value and of the value plus `\n` (`echo "$S" | base64`),
///   padded and unpadded, the characters that depend only on the value at each of the three byte
///   alignments inside larger encoded data (`printf 'user:%s' "$S" | base64`), and those
///   encodings cut into lines of 64 and 76 characters as `openssl base64` and `base64` print them;
/// - percent-encoding as RFC 3986, Python `quote`, JavaScript `encodeURIComponent` and form
///   encoding do it, with upper and lower case hex digits;
/// - JSON string escaping as `serde_json`, jq and JavaScript do it, with Python's `ensure_ascii`,
///   PHP's `\/` and Go's `\u0026` HTML escaping.
///
/// Derived forms shorter than `MIN_SECRET_LEN` are left out. Overlapping or adjacent matches are
/// merged and replaced by one `MASK`.
#[derive(Clone, Default)]
pub struct Masker {
    automaton: Arc<Automaton>,
    too_short: Arc<[usize]>,
    /// What the automaton was built from, so that `with` can add values.
    patterns: Arc<[Vec<u8>]>,
    values: usize,
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        Masker::default().with(values)
    }

    /// A masker for these values and `values` too: secrets learned during a run (a step's
    /// secret outputs) are masked from then on.
    pub fn with(&self, values: impl IntoIterator<Item = String>) -> Masker {
        let mut patterns = self.patterns.to_vec();
        let mut too_short = self.too_short.to_vec();
        let mut count = self.values;
        for value in values {
            if value.len() < MIN_SECRET_LEN {
                too_short.push(count);
            }
            count += 1;
            patterns.extend(derived_forms(&value));
        }
        Masker {
            automaton: Arc::new(Automaton::new(&patterns)),
            too_short: too_short.into(),
            patterns: patterns.into(),
            values: count,
        }
    }

    /// True when there is nothing to mask, so output passes through unchanged.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_empty()
    }

    /// The positions, in the list given to `new`, of values shorter than `MIN_SECRET_LEN`,
    /// empty ones included: they are masked where possible, but the caller should warn.
    pub fn too_short(&self) -> &[usize] {
        &self.too_short
    }

    pub fn mask_str(&self, text: &str) -> String {
        let masked = self.mask_bytes(text.as_bytes());
        // Whole patterns are valid UTF-8 cut at character boundaries, so replacing them keeps
        // the text valid; the lossy path is only a fallback that cannot leak a value.
        String::from_utf8(masked)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }

    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.stream();
        let mut masked = stream.push(bytes);
        masked.extend(stream.finish());
        masked
    }

    /// A masking state for one byte stream (one step's stdout, say).
    pub fn stream(&self) -> MaskingStream {
        MaskingStream {
            automaton: Arc::clone(&self.automaton),
            state: ROOT,
            pending: Vec::new(),
            decided: 0,
            ranges: Vec::new(),
            in_mask: false,
        }
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("patterns", &self.automaton.pattern_count)
            .field("too_short", &self.too_short)
            .finish()
    }
}

/// Masks a byte stream delivered in arbitrary chunks: `push` returns the bytes that can no longer
/// be part of a secret and holds back the rest, at most the longest pattern less one byte, and
/// only while the held bytes could still begin a secret; `finish` flushes what is held.
pub struct MaskingStream {
    automaton: Arc<Automaton>,
    state: u32,
    /// Bytes from `decided` up to the end of the input consumed so far.
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`: everything before it has been written out.
    decided: u64,
    /// Merged, sorted ranges to mask that are not yet written, none starting before `decided`.
    ranges: Vec<(u64, u64)>,
    /// The output so far ends with a `MASK` covering input up to `decided`, so a range starting
    /// there continues it rather than adding a second `MASK`.
    in_mask: bool,
}

impl MaskingStream {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.automaton.is_empty() {
            return chunk.to_vec();
        }
        let start = self.decided + self.pending.len() as u64;
        for (index, &byte) in chunk.iter().enumerate() {
            self.state = self.automaton.next_state(self.state, byte);
            let matched = self.automaton.match_len(self.state);
            if matched > 0 {
                let end = start + index as u64 + 1;
                self.add_range(end - u64::from(matched), end);
            }
        }
        self.pending.extend_from_slice(chunk);
        let consumed = start + chunk.len() as u64;
        // Only the bytes of the longest suffix that may still grow into a secret are undecided.
        let limit = consumed - u64::from(self.automaton.live_depth(self.state));
        self.emit_until(limit)
    }

    pub fn finish(mut self) -> Vec<u8> {
        let end = self.decided + self.pending.len() as u64;
        self.emit_until(end)
    }

    fn add_range(&mut self, start: u64, end: u64) {
        // Matches arrive in order of their end, so the new range reaches furthest and only
        // swallows ranges from the back.
        let mut start = start;
        while let Some(&(last_start, last_end)) = self.ranges.last() {
            if start > last_end {
                break;
            }
            start = start.min(last_start);
            self.ranges.pop();
        }
        self.ranges.push((start, end));
    }

    fn emit_until(&mut self, limit: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pending.len());
        let base = self.decided;
        // `pending` never holds more than one chunk plus the held-back bytes, so these
        // offsets fit in memory and therefore in `usize`.
        let offset = |at: u64| (at - base) as usize;
        let mut cursor = base;
        let mut written_ranges = 0;
        for &(start, end) in &self.ranges {
            if start >= limit {
                break;
            }
            if start > cursor {
                out.extend_from_slice(&self.pending[offset(cursor)..offset(start)]);
                self.in_mask = false;
            }
            if !self.in_mask {
                out.extend_from_slice(MASK.as_bytes());
                self.in_mask = true;
            }
            cursor = end.min(limit);
            if end > limit {
                break;
            }
            written_ranges += 1;
        }
        if cursor < limit {
            out.extend_from_slice(&self.pending[offset(cursor)..offset(limit)]);
            self.in_mask = false;
            cursor = limit;
        }
        self.ranges.drain(..written_ranges);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(cursor);
        }
        self.pending.drain(..offset(cursor));
        self.decided = cursor;
        out
    }
}

impl fmt::Debug for MaskingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The held bytes may be the start of a secret, so only their count is shown.
        f.debug_struct("MaskingStream")
            .field("held_back", &self.pending.len())
            .field("decided", &self.decided)
            .finish()
    }
}

/// Every byte string to mask for one secret value.
fn derived_forms(value: &str) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return Vec::new();
    }
    let mut derived = Vec::new();
    if value.contains('\n') {
        for line in value.split('\n') {
            derived.push(line.strip_suffix('\r').unwrap_or(line).as_bytes().to_vec());
        }
    }
    derived.extend(base64_forms(value.as_bytes()));
    derived.extend(percent_forms(value.as_bytes()));
    derived.extend(json_forms(value).into_iter().map(String::into_bytes));

    let mut forms = vec![value.as_bytes().to_vec()];
    forms.extend(
        derived
            .into_iter()
            .filter(|form| form.len() >= MIN_SECRET_LEN),
    );
    forms.sort();
    forms.dedup();
    forms
}

const BASE64_STANDARD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL_SAFE: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Line lengths of wrapping encoders: `openssl base64` and `base64` (coreutils).
const BASE64_LINE_LENGTHS: [usize; 2] = [64, 76];

fn base64_encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let bits = group.iter().enumerate().fold(0u32, |bits, (index, &byte)| {
            bits | u32::from(byte) << (16 - 8 * index)
        });
        for index in 0..4 {
            if index <= group.len() {
                encoded.push(alphabet[(bits >> (18 - 6 * index) & 0x3f) as usize]);
            } else if pad {
                encoded.push(b'=');
            }
        }
    }
    encoded
}

/// The base64 characters fixed by `bytes` alone when they start `offset` bytes into a 3-byte
/// group: the characters at either end also carry bits of the neighbouring data, so they vary.
fn base64_stable(bytes: &[u8], offset: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(bytes);
    let encoded = base64_encode(&data, alphabet, false);
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + bytes.len()) / 6;
    encoded
        .get(first..end)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn base64_forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut with_newline = bytes.to_vec();
    with_newline.push(b'\n');
    let mut forms = Vec::new();
    for alphabet in [BASE64_STANDARD, BASE64_URL_SAFE] {
        let padded = base64_encode(bytes, alphabet, true);
        let padded_with_newline = base64_encode(&with_newline, alphabet, true);
        let stable = base64_stable(bytes, 0, alphabet);
        for encoded in [&padded, &padded_with_newline, &stable] {
            for line_length in BASE64_LINE_LENGTHS {
                if encoded.len() > line_length {
                    forms.extend(encoded.chunks(line_length).map(<[u8]>::to_vec));
                }
            }
        }
        forms.push(base64_encode(bytes, alphabet, false));
        forms.push(base64_encode(&with_newline, alphabet, false));
        forms.push(padded);
        forms.push(padded_with_newline);
        forms.push(stable);
        forms.push(base64_stable(bytes, 1, alphabet));
        forms.push(base64_stable(bytes, 2, alphabet));
    }
    forms
}

/// How one percent-encoder treats the bytes it may leave alone.
struct PercentStyle {
    /// Kept as they are, besides ASCII letters and digits.
    unescaped: &'static [u8],
    space_as_plus: bool,
}

const PERCENT_STYLES: [PercentStyle; 5] = [
    // RFC 3986 unreserved characters; jq `@uri`, curl.
    PercentStyle {
        unescaped: b"-._~",
        space_as_plus: false,
    },
    // Python `urllib.parse.quote` with its default `safe='/'`.
    PercentStyle {
        unescaped: b"-._~/",
        space_as_plus: false,
    },
    // JavaScript `encodeURIComponent`.
    PercentStyle {
        unescaped: b"-._~!'()*",
        space_as_plus: false,
    },
    // Python `quote_plus`, Go `url.QueryEscape`.
    PercentStyle {
        unescaped: b"-._~",
        space_as_plus: true,
    },
    // WHATWG form encoding, JavaScript `URLSearchParams`.
    PercentStyle {
        unescaped: b"*-._",
        space_as_plus: true,
    },
];

fn percent_encode(bytes: &[u8], style: &PercentStyle, hex_digits: &[u8; 16]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || style.unescaped.contains(&byte) {
            encoded.push(byte);
        } else if byte == b' ' && style.space_as_plus {
            encoded.push(b'+');
        } else {
            encoded.extend_from_slice(&[
                b'%',
                hex_digits[usize::from(byte >> 4)],
                hex_digits[usize::from(byte & 0xf)],
            ]);
        }
    }
    encoded
}

fn percent_forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for style in &PERCENT_STYLES {
        for hex_digits in [b"0123456789ABCDEF", b"0123456789abcdef"] {
            forms.push(percent_encode(bytes, style, hex_digits));
        }
    }
    forms
}

/// How one JSON encoder escapes what it need not.
#[derive(Clone, Copy)]
struct JsonStyle {
    /// Everything outside printable ASCII as `\uXXXX` (Python `ensure_ascii`, PHP).
    ascii_only: bool,
    /// `/` as `\/` (PHP).
    slash: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX` (Go `encoding/json`).
    html: bool,
}

const JSON_STYLES: [JsonStyle; 4] = [
    JsonStyle {
        ascii_only: false,
        slash: false,
        html: false,
    },
    JsonStyle {
        ascii_only: true,
        slash: false,
        html: false,
    },
    JsonStyle {
        ascii_only: true,
        slash: true,
        html: false,
    },
    JsonStyle {
        ascii_only: false,
        slash: false,
        html: true,
    },
];

fn json_escape(value: &str, style: JsonStyle) -> String {
    use fmt::Write as _;

    let mut escaped = String::with_capacity(value.len() + 2);
    for character in value.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{8}' => escaped.push_str("\\b"),
            '\u{c}' => escaped.push_str("\\f"),
            '/' if style.slash => escaped.push_str("\\/"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if style.html => {
                let _ = write!(escaped, "\\u{:04x}", u32::from(character));
            }
            '\u{0}'..='\u{1f}' => {
                let _ = write!(escaped, "\\u{:04x}", u32::from(character));
            }
            '\u{7f}'.. if style.ascii_only => {
                for unit in character.encode_utf16(&mut [0; 2]) {
                    let _ = write!(escaped, "\\u{unit:04x}");
                }
            }
            _ => escaped.push(character),
        }
    }
    escaped
}

fn json_forms(value: &str) -> Vec<String> {
    JSON_STYLES
        .iter()
        .map(|&style| json_escape(value, style))
        .collect()
}

const ROOT: u32 = 0;

/// An Aho-Corasick automaton over all patterns; besides matches it tells how many trailing bytes
/// may still grow into a match, which is what a stream must hold back.
struct Automaton {
    nodes: Vec<Node>,
    /// Transitions of the root for every byte, so text far from any secret costs one lookup a
    /// byte.
    root_next: Box<[u32; 256]>,
    pattern_count: usize,
}

#[derive(Default)]
struct Node {
    children: Vec<(u8, u32)>,
    fail: u32,
    depth: u32,
    /// Length of the longest pattern ending here, following failure links; 0 for none.
    match_len: u32,
    /// Depth of the deepest node on the failure chain (this one included) with children: the
    /// longest suffix of the input that a later byte could still extend into a match.
    live_depth: u32,
    terminal: bool,
}

impl Default for Automaton {
    fn default() -> Automaton {
        Automaton::new(&[])
    }
}

impl Automaton {
    fn new(patterns: &[Vec<u8>]) -> Automaton {
        let mut nodes = vec![Node::default()];
        let mut pattern_count = 0;
        for pattern in patterns.iter().filter(|pattern| !pattern.is_empty()) {
            pattern_count += 1;
            let mut state = ROOT;
            for &byte in pattern {
                state = match child(&nodes, state, byte) {
                    Some(next) => next,
                    None => {
                        let next = nodes.len() as u32;
                        let depth = nodes[state as usize].depth + 1;
                        nodes.push(Node {
                            depth,
                            ..Node::default()
                        });
                        nodes[state as usize].children.push((byte, next));
                        next
                    }
                };
            }
            nodes[state as usize].terminal = true;
        }

        let mut root_next = Box::new([ROOT; 256]);
        for &(byte, next) in &nodes[ROOT as usize].children {
            root_next[usize::from(byte)] = next;
        }
        nodes[ROOT as usize].live_depth = 0;

        // Breadth-first, so every failure target is finished before the nodes pointing at it.
        let mut queue = std::collections::VecDeque::from([ROOT]);
        while let Some(state) = queue.pop_front() {
            let children = nodes[state as usize].children.clone();
            for (byte, next) in children {
                let fail = if state == ROOT {
                    ROOT
                } else {
                    let mut candidate = nodes[state as usize].fail;
                    loop {
                        if let Some(target) = child(&nodes, candidate, byte) {
                            break target;
                        }
                        if candidate == ROOT {
                            break ROOT;
                        }
                        candidate = nodes[candidate as usize].fail;
                    }
                };
                let fail_node = &nodes[fail as usize];
                let (fail_match, fail_live) = (fail_node.match_len, fail_node.live_depth);
                let node = &mut nodes[next as usize];
                node.fail = fail;
                node.match_len = if node.terminal {
                    node.depth
                } else {
                    fail_match
                };
                node.live_depth = if node.children.is_empty() {
                    fail_live
                } else {
                    node.depth
                };
                queue.push_back(next);
            }
        }
        Automaton {
            nodes,
            root_next,
            pattern_count,
        }
    }

    fn is_empty(&self) -> bool {
        self.pattern_count == 0
    }

    fn next_state(&self, mut state: u32, byte: u8) -> u32 {
        loop {
            if state == ROOT {
                return self.root_next[usize::from(byte)];
            }
            if let Some(next) = child(&self.nodes, state, byte) {
                return next;
            }
            state = self.nodes[state as usize].fail;
        }
    }

    fn match_len(&self, state: u32) -> u32 {
        self.nodes[state as usize].match_len
    }

    fn live_depth(&self, state: u32) -> u32 {
        self.nodes[state as usize].live_depth
    }
}

fn child(nodes: &[Node], state: u32, byte: u8) -> Option<u32> {
    nodes[state as usize]
        .children
        .iter()
        .find(|&&(label, _)| label == byte)
        .map(|&(_, next)| next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "Tr0ub4dor&3-xyzzy";

    fn masker(values: &[&str]) -> Masker {
        Masker::new(values.iter().map(|value| value.to_string()))
    }

    /// A tiny deterministic generator (xorshift64*), so random tests repeat exactly.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// The masking rule written the slow, obvious way: find every occurrence of every pattern,
    /// merge the overlapping and adjacent ranges, replace each merged range with one `MASK`.
    fn reference_mask(values: &[&str], text: &[u8]) -> Vec<u8> {
        let patterns: Vec<Vec<u8>> = values
            .iter()
            .flat_map(|value| derived_forms(value))
            .collect();
        let mut masked = vec![false; text.len()];
        for pattern in &patterns {
            for start in 0..text.len().saturating_sub(pattern.len() - 1) {
                if text[start..].starts_with(pattern) {
                    masked[start..start + pattern.len()].fill(true);
                }
            }
        }
        // Adjacent matches merge too, which the flag vector cannot tell from one long match:
        // both give one `MASK`.
        let mut out = Vec::new();
        for (index, &byte) in text.iter().enumerate() {
            if !masked[index] {
                out.push(byte);
            } else if index == 0 || !masked[index - 1] {
                out.extend_from_slice(MASK.as_bytes());
            }
        }
        out
    }

    fn mask_in_chunks(masker: &Masker, text: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
        let mut stream = masker.stream();
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let size = sizes().clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(size);
            out.extend(stream.push(chunk));
            assert!(
                stream.pending.len() < masker.automaton.max_pattern_len().max(1),
                "held back {} bytes",
                stream.pending.len()
            );
            rest = tail;
        }
        out.extend(stream.finish());
        out
    }

    impl Automaton {
        fn max_pattern_len(&self) -> usize {
            self.nodes
                .iter()
                .map(|node| node.depth as usize)
                .max()
                .unwrap_or(0)
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn secret_never_formats_its_value() {
        let secret = Secret::new(FIXTURE.to_string());
        assert_eq!(format!("{secret:?}"), MASK);
        assert_eq!(format!("{secret:#?}"), MASK);
        assert_eq!(format!("{secret}"), MASK);
        assert_eq!(
            format!("{:?}", Some(vec![secret.clone()])),
            format!("Some([{MASK}])")
        );
        assert_eq!(secret.expose(), FIXTURE);
    }

    #[test]
    fn masker_debug_shows_no_value() {
        let masker = masker(&[FIXTURE]);
        let debug = format!("{masker:?} {:?}", masker.stream());
        assert!(!debug.contains("Tr0ub"), "{debug}");
    }

    #[test]
    fn masks_every_occurrence() {
        let masker = masker(&[FIXTURE]);
        assert_eq!(
            masker.mask_str(&format!("pw={FIXTURE} again {FIXTURE}.")),
            format!("pw={MASK} again {MASK}.")
        );
        assert_eq!(masker.mask_str("nothing here"), "nothing here");
    }

    #[test]
    fn empty_masker_passes_everything_through() {
        let masker = Masker::new(Vec::new());
        assert!(masker.is_empty());
        assert!(Masker::default().is_empty());
        let mut stream = masker.stream();
        assert_eq!(stream.push(b"abc"), b"abc");
        assert_eq!(stream.finish(), b"");
        assert_eq!(masker.mask_bytes(b"\xff\x00x"), b"\xff\x00x");
    }

    #[test]
    fn short_values_are_masked_and_reported() {
        let masker = masker(&["long-enough", "abc", "", "abcd"]);
        assert_eq!(masker.too_short(), &[1, 2]);
        assert!(!masker.is_empty());
        assert_eq!(masker.mask_str("x abc y"), format!("x {MASK} y"));
        // The empty value matches nothing rather than everything.
        assert_eq!(masker.mask_str("plain"), "plain");
        assert!(Masker::new([String::new()]).is_empty());
    }

    #[test]
    fn multi_line_secret_masks_each_line() {
        let key = "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\r\nhkiG9w0BAQEFAASC\r\nab\r\n-----END KEY-----\r\n";
        let masker = masker(&[key]);
        let reversed =
            "-----END KEY-----\nab\nhkiG9w0BAQEFAASC\nMIIEvQIBADANBgkq\n-----BEGIN KEY-----\n";
        let masked = masker.mask_str(reversed);
        for line in [
            "MIIEvQIBADANBgkq",
            "hkiG9w0BAQEFAASC",
            "BEGIN KEY",
            "END KEY",
        ] {
            assert!(!masked.contains(line), "{masked}");
        }
        // A line below the minimum length is too common to mask on its own.
        assert!(masked.contains("\nab\n"), "{masked}");
        assert!(!masker.mask_str(key).contains("MIIE"));
    }

    #[test]
    fn base64_encoder_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(
                base64_encode(plain.as_bytes(), BASE64_STANDARD, true),
                encoded.as_bytes()
            );
        }
        assert_eq!(base64_encode(&[0xfb, 0xff], BASE64_URL_SAFE, false), b"-_8");
    }

    #[test]
    fn masks_base64_forms() {
        let masker = masker(&[FIXTURE]);
        // Outputs of the real commands, recorded once.
        let cases = [
            // printf %s "$S" | base64
            "VHIwdWI0ZG9yJjMteHl6enk=",
            // echo "$S" | base64
            "VHIwdWI0ZG9yJjMteHl6enkK",
            // printf 'admin:%s' "$S" | base64
            "YWRtaW46VHIwdWI0ZG9yJjMteHl6enk=",
            // printf 'u:%s' "$S" | base64
            "dTpUcjB1YjRkb3ImMy14eXp6eQ==",
            // printf 'x%s' "$S" | base64
            "eFRyMHViNGRvciYzLXh5enp5",
        ];
        for encoded in cases {
            let masked = masker.mask_str(&format!("out: {encoded}\n"));
            assert!(masked.contains(MASK), "{encoded} -> {masked}");
            // At most the few characters carrying bits of the surrounding data remain.
            let left = masked.len() - MASK.len() - "out: \n".len();
            assert!(left <= 10, "{encoded} -> {masked}");
        }
        let plain_then_newline = masker.mask_str("VHIwdWI0ZG9yJjMteHl6enkK");
        assert_eq!(plain_then_newline, MASK);
    }

    #[test]
    fn masks_wrapped_base64_of_a_long_secret() {
        let long = "k".repeat(30) + &"Z9".repeat(40);
        let masker = masker(&[&long]);
        let mut encoded = base64_encode(format!("{long}\n").as_bytes(), BASE64_STANDARD, true);
        let mut wrapped = Vec::new();
        for line in encoded.chunks_mut(76) {
            wrapped.extend_from_slice(line);
            wrapped.push(b'\n');
        }
        let masked = masker.mask_bytes(&wrapped);
        for line in wrapped
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            assert!(
                !contains(&masked, line),
                "{}",
                String::from_utf8_lossy(&masked)
            );
        }
    }

    #[test]
    fn masks_percent_encoded_forms() {
        let secret = "p@ss w/rd&x";
        let masker = masker(&[FIXTURE, secret]);
        for encoded in [
            "Tr0ub4dor%263-xyzzy",
            "p%40ss%20w%2Frd%26x",
            "p%40ss%20w/rd%26x",
            "p%40ss+w%2Frd%26x",
            "p%40ss%20w%2frd%26x",
        ] {
            assert_eq!(
                masker.mask_str(&format!("?q={encoded}")),
                format!("?q={MASK}"),
                "{encoded}"
            );
        }
    }

    #[test]
    fn masks_json_escaped_forms() {
        let secret = "a\"b\\c\nd/é&\u{1}";
        let masker = masker(&[secret]);
        for encoded in [
            r#"a\"b\\c\nd/é&\u0001"#,
            r#"a\"b\\c\nd/\u00e9&\u0001"#,
            r#"a\"b\\c\nd\/\u00e9&\u0001"#,
            r#"a\"b\\c\nd/é\u0026\u0001"#,
        ] {
            assert_eq!(
                masker.mask_str(&format!("{{\"v\":\"{encoded}\"}}")),
                format!("{{\"v\":\"{MASK}\"}}"),
                "{encoded}"
            );
        }
        assert_eq!(json_escape("😀", JSON_STYLES[1]), r"\ud83d\ude00");
    }

    #[test]
    fn overlapping_and_nested_matches_are_all_covered() {
        let masker = masker(&["abcdef", "defghi", "xbcdy"]);
        assert_eq!(masker.mask_str("1abcdefghi2"), format!("1{MASK}2"));
        assert_eq!(masker.mask_str("abcdefghi"), MASK);
        // Adjacent secrets become one mask, like overlapping ones.
        assert_eq!(masker.mask_str("abcdefabcdef"), MASK);
        let nested = Masker::new(["bcd".to_string(), "abcdefg".to_string()]);
        assert_eq!(
            nested.mask_str("zabcdefgz abcz bcd"),
            format!("z{MASK}z abcz {MASK}")
        );
    }

    #[test]
    fn stream_masks_a_secret_fed_one_byte_at_a_time() {
        let masker = masker(&[FIXTURE, "second-secret"]);
        let text = format!("start {FIXTURE} middle second-secret{FIXTURE} end Tr0ub4do");
        let masked = mask_in_chunks(&masker, text.as_bytes(), &mut || 1);
        assert_eq!(masked, masker.mask_bytes(text.as_bytes()));
        assert_eq!(
            String::from_utf8(masked).expect("masked text stays utf-8"),
            format!("start {MASK} middle {MASK} end Tr0ub4do")
        );
    }

    #[test]
    fn stream_masks_secrets_at_chunk_boundaries() {
        let masker = masker(&[FIXTURE]);
        let text = format!("{FIXTURE}{FIXTURE}-{FIXTURE}");
        for split in 0..=text.len() {
            let (first, second) = text.as_bytes().split_at(split);
            let mut stream = masker.stream();
            let mut out = stream.push(first);
            out.extend(stream.push(second));
            out.extend(stream.finish());
            assert_eq!(out, format!("{MASK}-{MASK}").as_bytes(), "split at {split}");
        }
    }

    #[test]
    fn stream_holds_back_only_a_possible_secret_start() {
        let masker = masker(&[FIXTURE]);
        let mut stream = masker.stream();
        // No byte could start a secret: all of it is emitted at once.
        assert_eq!(stream.push(b"hello world\n"), b"hello world\n");
        // A possible start is held, and released once it can no longer be one.
        assert_eq!(stream.push(b"x Tr0u"), b"x ");
        assert_eq!(stream.push(b"t"), b"Tr0ut");
        assert_eq!(stream.push(b" Tr0ub"), b" ");
        assert_eq!(stream.finish(), b"Tr0ub");
    }

    #[test]
    fn stream_equals_one_shot_masking_under_random_chunking() {
        let values = ["abcab", "bcabx", "cabcabcab", "aaaa", "b\nc\nabca", FIXTURE];
        let masker = masker(&values);
        let alphabet = b"abcx\n";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let length = rng.below(200);
            let mut text: Vec<u8> = (0..length)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if round % 3 == 0 {
                let at = rng.below(text.len() + 1);
                text.splice(at..at, FIXTURE.bytes());
            }
            let expected = reference_mask(&values, &text);
            assert_eq!(
                masker.mask_bytes(&text),
                expected,
                "one shot, round {round}"
            );
            let max_chunk = 1 + rng.below(20);
            let chunked = mask_in_chunks(&masker, &text, &mut || 1 + rng.below(max_chunk));
            assert_eq!(chunked, expected, "chunked, round {round}");
        }
    }

    #[test]
    fn stream_of_ten_megabytes_masks_everything() {
        let values = [
            FIXTURE,
            "another-secret-value",
            "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n",
        ];
        let masker = masker(&values);
        let mut rng = Rng(42);
        let mut text = Vec::with_capacity(10 << 20);
        let mut planted = 0;
        while text.len() < 10 << 20 {
            match rng.below(1000) {
                0 => {
                    text.extend_from_slice(values[rng.below(values.len())].as_bytes());
                    planted += 1;
                }
                1 => text.extend_from_slice(b"Tr0ub4"),
                _ => text.extend_from_slice(b"log line with some text 0123456789\n"),
            }
        }
        let mut stream = masker.stream();
        let mut out = Vec::with_capacity(text.len());
        for chunk in text.chunks(65_536 + 7) {
            out.extend(stream.push(chunk));
        }
        out.extend(stream.finish());
        assert!(planted > 100);
        for needle in [
            FIXTURE.as_bytes(),
            b"another-secret-value",
            b"MIIEvQIBADANBgkq",
        ] {
            assert!(!contains(&out, needle));
        }
        // Neighbouring secrets merge into one mask, so only a lower bound holds.
        let masks = out
            .windows(MASK.len())
            .filter(|window| *window == MASK.as_bytes())
            .count();
        assert!(masks >= planted / 2, "{masks} masks for {planted} secrets");
        assert_eq!(out, masker.mask_bytes(&text));
    }

    #[test]
    fn invalid_utf8_passes_through_bytes() {
        let masker = masker(&[FIXTURE]);
        let text = [b"\xff\x00".as_slice(), FIXTURE.as_bytes(), b"\xc3"].concat();
        assert_eq!(
            masker.mask_bytes(&text),
            [b"\xff\x00".as_slice(), MASK.as_bytes(), b"\xc3"].concat()
        );
    }
}
