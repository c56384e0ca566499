//! Takes the wrapper's reports out of the stderr of a session (`FrameScanner`): lines that
//! start with the session's nonce say that the script started, that the host could not start
//! it, or how it ended (with the contents of `RUNBOOK_OUTPUT`); everything else is the
//! script's stderr and passes through unchanged, split wherever the chunks were.

/// One report of the wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Frame {
    /// The script runs as this process (and group) on the host.
    Started(u32),
    /// The host could not start the script.
    Failed(String),
    Finished(Finish),
}

/// How the script ended, as the wrapper saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finish {
    /// As the host's shell reports it: 128 + N after a signal N.
    pub code: i32,
    /// The wrapper sent SIGTERM: the engine stopped the step or the connection ended.
    pub stopped: bool,
    /// SIGKILL was needed.
    pub killed: bool,
    pub output: Vec<u8>,
}

/// Longest header line accepted; a longer one is not a frame of ours and passes through.
const MAX_HEADER: usize = 4096;

#[derive(Debug)]
enum State {
    Passing,
    Header,
    Output {
        code: i32,
        stopped: bool,
        killed: bool,
    },
}

#[derive(Debug)]
pub(super) struct FrameScanner {
    /// `<nonce> `: what starts every frame.
    marker: Vec<u8>,
    /// `<nonce> end\n`: what ends the output of a `Finished` frame.
    end: Vec<u8>,
    buffer: Vec<u8>,
    state: State,
}

impl FrameScanner {
    pub fn new(nonce: &str) -> FrameScanner {
        FrameScanner {
            marker: format!("{nonce} ").into_bytes(),
            end: format!("{nonce} end\n").into_bytes(),
            buffer: Vec::new(),
            state: State::Passing,
        }
    }

    /// Takes in the next bytes of stderr; returns the script's bytes among them and adds
    /// the completed frames to `frames`. A possible start of a frame is held back until the
    /// next call tells.
    pub fn push(&mut self, bytes: &[u8], frames: &mut Vec<Frame>) -> Vec<u8> {
        self.buffer.extend_from_slice(bytes);
        let mut passed = Vec::new();
        loop {
            match self.state {
                State::Passing => match find(&self.buffer, &self.marker) {
                    Some(start) => {
                        passed.extend_from_slice(&self.buffer[..start]);
                        self.buffer.drain(..start + self.marker.len());
                        self.state = State::Header;
                    }
                    None => {
                        let keep = partial_suffix(&self.buffer, &self.marker);
                        let until = self.buffer.len() - keep;
                        passed.extend(self.buffer.drain(..until));
                        return passed;
                    }
                },
                State::Header => {
                    let Some(newline) = self.buffer.iter().position(|&byte| byte == b'\n') else {
                        if self.buffer.len() > MAX_HEADER {
                            passed.extend_from_slice(&self.marker);
                            self.state = State::Passing;
                            continue;
                        }
                        return passed;
                    };
                    let line = String::from_utf8_lossy(&self.buffer[..newline]).into_owned();
                    self.buffer.drain(..=newline);
                    self.state = State::Passing;
                    match parse_header(&line) {
                        Some(Header::Started(pid)) => frames.push(Frame::Started(pid)),
                        Some(Header::Failed(message)) => frames.push(Frame::Failed(message)),
                        Some(Header::Exit {
                            code,
                            stopped,
                            killed,
                        }) => {
                            self.state = State::Output {
                                code,
                                stopped,
                                killed,
                            }
                        }
                        None => {
                            // Not ours after all: give it back as it came.
                            passed.extend_from_slice(&self.marker);
                            passed.extend_from_slice(line.as_bytes());
                            passed.push(b'\n');
                        }
                    }
                }
                State::Output {
                    code,
                    stopped,
                    killed,
                } => {
                    let Some(end) = find(&self.buffer, &self.end) else {
                        return passed;
                    };
                    let output = self.buffer[..end].to_vec();
                    self.buffer.drain(..end + self.end.len());
                    frames.push(Frame::Finished(Finish {
                        code,
                        stopped,
                        killed,
                        output,
                    }));
                    self.state = State::Passing;
                }
            }
        }
    }

    /// What was held back when stderr ended: the script's, unless it was part of an
    /// unfinished frame (the connection ended in the middle of a report).
    pub fn finish(self) -> Vec<u8> {
        match self.state {
            State::Passing => self.buffer,
            State::Header | State::Output { .. } => Vec::new(),
        }
    }
}

enum Header {
    Started(u32),
    Failed(String),
    Exit {
        code: i32,
        stopped: bool,
        killed: bool,
    },
}

fn parse_header(line: &str) -> Option<Header> {
    let (kind, rest) = line.split_once(' ')?;
    match kind {
        "started" => rest.parse().ok().map(Header::Started),
        "fail" => Some(Header::Failed(rest.to_string())),
        "exit" => {
            let mut words = rest.split(' ');
            let code = words.next()?.parse().ok()?;
            let stopped = words.next()? == "1";
            let killed = words.next()? == "1";
            Some(Header::Exit {
                code,
                stopped,
                killed,
            })
        }
        _ => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The length of the longest end of `bytes` that is the start of `marker` (shorter than it).
fn partial_suffix(bytes: &[u8], marker: &[u8]) -> usize {
    let longest = marker.len().saturating_sub(1).min(bytes.len());
    (1..=longest)
        .rev()
        .find(|&length| bytes[bytes.len() - length..] == marker[..length])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    /// Feeds `stream` in pieces of `size` bytes; returns the passed bytes and the frames.
    fn scan(stream: &[u8], size: usize) -> (Vec<u8>, Vec<Frame>) {
        let mut scanner = FrameScanner::new(NONCE);
        let mut frames = Vec::new();
        let mut passed = Vec::new();
        for piece in stream.chunks(size) {
            passed.extend(scanner.push(piece, &mut frames));
        }
        passed.extend(scanner.finish());
        (passed, frames)
    }

    #[test]
    fn frames_are_taken_out_wherever_the_chunks_split() {
        let stream = format!(
            "warn: half a line{NONCE} started 4242\n and its end\n{NONCE} exit 255 0 0\nkey=value\n{NONCE} end\nafter\n"
        );
        for size in [1, 2, 7, 33, 1000] {
            let (passed, frames) = scan(stream.as_bytes(), size);
            assert_eq!(
                String::from_utf8_lossy(&passed),
                "warn: half a line and its end\nafter\n",
                "pieces of {size}"
            );
            assert_eq!(
                frames,
                [
                    Frame::Started(4242),
                    Frame::Finished(Finish {
                        code: 255,
                        stopped: false,
                        killed: false,
                        output: b"key=value\n".to_vec()
                    })
                ]
            );
        }
    }

    #[test]
    fn a_lookalike_without_the_nonce_passes_through() {
        let stream = format!("{} exit 0 0 0\n", &NONCE[..31]);
        let (passed, frames) = scan(stream.as_bytes(), 5);
        assert_eq!(passed, stream.as_bytes());
        assert!(frames.is_empty());
    }

    #[test]
    fn an_unfinished_report_is_dropped() {
        let stream = format!("out\n{NONCE} exit 0 1 0\npartial");
        let (passed, frames) = scan(stream.as_bytes(), 4);
        assert_eq!(passed, b"out\n");
        assert!(frames.is_empty());
    }
}
