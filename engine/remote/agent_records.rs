//! The host agent's protocol (engine/remote/agent.pl): the requests the engine writes on the
//! agent's stdin (`run_record`, `control_record`) and the reader of what the agent writes on
//! its stdout (`RecordReader`), length-prefixed records, binary-safe, several jobs
//! interleaved.

use super::RemoteRequest;

/// The line the agent prints once it runs; what the login shell printed before it (a noisy
/// rc file) is skipped.
const READY: &[u8] = b"RUNBOOK-AGENT ready 1";

/// The line the bootstrap prints when the host has no perl.
const NONE: &[u8] = b"RUNBOOK-AGENT none";

/// Longest header line: a longer one means the stream is not the agent's.
const MAX_HEADER: usize = 256;

/// Ignored lines before the agent's ready line, at most (a login banner, rc files' chatter).
const MAX_GREETING: usize = 64 * 1024;

/// One report of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// The agent runs and takes requests.
    Ready,
    /// The host has no perl: the agent cannot run there.
    NoAgent,
    /// Job `id`'s shell runs as this process (and group) on the host.
    Started { id: u64, pid: u32 },
    /// What job `id` wrote on stdout (`stderr` false) or stderr.
    Output {
        id: u64,
        stderr: bool,
        bytes: Vec<u8>,
    },
    /// The host could not start job `id`; nothing of it ran.
    Failed { id: u64, message: String },
    /// Job `id` ended.
    Exited {
        id: u64,
        code: i32,
        stopped: bool,
        killed: bool,
        output: Vec<u8>,
    },
}

/// The header of a record whose payload is still to come.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Output {
        id: u64,
        stderr: bool,
    },
    Failed {
        id: u64,
    },
    Exited {
        id: u64,
        code: i32,
        stopped: bool,
        killed: bool,
    },
}

/// Reads the agent's stdout, in chunks split anywhere.
#[derive(Debug, Default)]
pub(super) struct RecordReader {
    buffer: Vec<u8>,
    greeted: bool,
    /// Bytes skipped before the ready line.
    skipped: usize,
}

impl RecordReader {
    /// Takes in the next bytes; adds the completed records to `records`. An error when the
    /// stream is not the agent's protocol (the agent is then useless).
    pub fn push(&mut self, bytes: &[u8], records: &mut Vec<Record>) -> Result<(), String> {
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        let result = loop {
            match self.next(start) {
                Ok(Some((record, used))) => {
                    start += used;
                    if let Some(record) = record {
                        records.push(record);
                    }
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        self.buffer.drain(..start);
        result
    }

    /// The record at `start` of the buffer and the bytes it took (`None` for a skipped
    /// line), or `None` when it is not complete yet.
    fn next(&mut self, start: usize) -> Result<Option<(Option<Record>, usize)>, String> {
        let rest = &self.buffer[start..];
        let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
            if !self.greeted && self.skipped + rest.len() > MAX_GREETING {
                return Err("the host printed too much before the agent started".into());
            }
            if self.greeted && rest.len() > MAX_HEADER {
                return Err("a record header from the agent is too long".into());
            }
            return Ok(None);
        };
        let line = &rest[..newline];
        if !self.greeted {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.skipped += newline + 1;
            if line == READY {
                self.greeted = true;
                return Ok(Some((Some(Record::Ready), newline + 1)));
            }
            if line == NONE {
                return Ok(Some((Some(Record::NoAgent), newline + 1)));
            }
            return Ok(Some((None, newline + 1)));
        }
        let header = std::str::from_utf8(line)
            .map_err(|_| "a record header from the agent is not text".to_string())?;
        let (pending, length) = match parse_header(header)? {
            Header::Started { id, pid } => {
                return Ok(Some((Some(Record::Started { id, pid }), newline + 1)));
            }
            Header::WithPayload(pending, length) => (pending, length),
        };
        let Some(payload) = rest.get(newline + 1..newline + 1 + length) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        let record = match pending {
            Pending::Output { id, stderr } => Record::Output {
                id,
                stderr,
                bytes: payload,
            },
            Pending::Failed { id } => Record::Failed {
                id,
                message: String::from_utf8_lossy(&payload).into_owned(),
            },
            Pending::Exited {
                id,
                code,
                stopped,
                killed,
            } => Record::Exited {
                id,
                code,
                stopped,
                killed,
                output: payload,
            },
        };
        Ok(Some((Some(record), newline + 1 + length)))
    }
}

enum Header {
    Started { id: u64, pid: u32 },
    WithPayload(Pending, usize),
}

fn parse_header(line: &str) -> Result<Header, String> {
    let bad = || format!("the agent sent a record the engine does not know: {line:?}");
    let words: Vec<&str> = line.split(' ').collect();
    let number = |index: usize| -> Result<u64, String> {
        words
            .get(index)
            .and_then(|word| word.parse().ok())
            .ok_or_else(bad)
    };
    let flag = |index: usize| -> Result<bool, String> {
        match words.get(index) {
            Some(&"0") => Ok(false),
            Some(&"1") => Ok(true),
            _ => Err(bad()),
        }
    };
    let length = |index: usize| -> Result<usize, String> {
        usize::try_from(number(index)?).map_err(|_| bad())
    };
    let expect_words = |count: usize| {
        if words.len() == count {
            Ok(())
        } else {
            Err(bad())
        }
    };
    match words.first().copied() {
        Some("started") => {
            expect_words(3)?;
            let pid = u32::try_from(number(2)?).map_err(|_| bad())?;
            Ok(Header::Started {
                id: number(1)?,
                pid,
            })
        }
        Some(kind @ ("out" | "err")) => {
            expect_words(3)?;
            let pending = Pending::Output {
                id: number(1)?,
                stderr: kind == "err",
            };
            Ok(Header::WithPayload(pending, length(2)?))
        }
        Some("fail") => {
            expect_words(3)?;
            Ok(Header::WithPayload(
                Pending::Failed { id: number(1)? },
                length(2)?,
            ))
        }
        Some("exit") => {
            expect_words(6)?;
            let code = words
                .get(2)
                .and_then(|word| word.parse().ok())
                .ok_or_else(bad)?;
            let pending = Pending::Exited {
                id: number(1)?,
                code,
                stopped: flag(3)?,
                killed: flag(4)?,
            };
            Ok(Header::WithPayload(pending, length(5)?))
        }
        _ => Err(bad()),
    }
}

/// The request to run job `id`: `run <id> <len>\n` and its fields, NUL-separated (the
/// grace in milliseconds, the working directory, the host's name, the shell's words, the
/// environment, the script). The values were checked (`wrapper::check`): none holds a NUL.
pub(super) fn run_record(id: u64, request: &RemoteRequest, host: &str) -> Vec<u8> {
    let words = super::wrapper::shell_words(&request.shell);
    let grace = request.grace.as_millis().to_string();
    let cwd = match &request.cwd {
        Some(cwd) => format!("1{cwd}"),
        None => "0".to_string(),
    };
    let shell_count = words.len().to_string();
    let env_count = request.env.len().to_string();
    let mut fields: Vec<&str> = vec![&grace, &cwd, host, &shell_count];
    fields.extend(words.iter().map(String::as_str));
    fields.push(&env_count);
    for (name, value) in &request.env {
        fields.push(name);
        fields.push(value);
    }
    fields.push(&request.script);
    let payload = fields.join("\0");
    let mut record = format!("run {id} {}\n", payload.len()).into_bytes();
    record.extend_from_slice(payload.as_bytes());
    record
}

/// What the engine asks of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobControl {
    /// SIGTERM to the group (the engine times the grace).
    Terminate,
    /// SIGKILL to the group now.
    Kill,
    /// SIGTERM, the job's grace timed on the host, SIGKILL: the engine no longer waits.
    Abandon,
}

pub(super) fn control_record(id: u64, control: JobControl) -> Vec<u8> {
    let kind = match control {
        JobControl::Terminate => "term",
        JobControl::Kill => "kill",
        JobControl::Abandon => "stop",
    };
    format!("{kind} {id}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Feeds `stream` in pieces of `size` bytes.
    fn read(stream: &[u8], size: usize) -> Result<Vec<Record>, String> {
        let mut reader = RecordReader::default();
        let mut records = Vec::new();
        for piece in stream.chunks(size) {
            reader.push(piece, &mut records)?;
        }
        Ok(records)
    }

    #[test]
    fn records_of_several_jobs_come_apart_wherever_the_chunks_split() {
        let stream =
            b"Welcome to the host\nRUNBOOK-AGENT ready 1\nstarted 1 4242\nstarted 2 4243\n\
out 2 6\nb\nout\nerr 1 3\na\0\nexit 2 0 0 0 0\nout 1 12\nexit 1 0 0 0exit 1 255 1 1 4\nk=v\n";
        for size in [1, 2, 5, 17, 1000] {
            let records = read(stream, size).expect("the agent's protocol");
            assert_eq!(
                records,
                [
                    Record::Ready,
                    Record::Started { id: 1, pid: 4242 },
                    Record::Started { id: 2, pid: 4243 },
                    Record::Output {
                        id: 2,
                        stderr: false,
                        bytes: b"b\nout\n".to_vec()
                    },
                    Record::Output {
                        id: 1,
                        stderr: true,
                        bytes: b"a\0\n".to_vec()
                    },
                    Record::Exited {
                        id: 2,
                        code: 0,
                        stopped: false,
                        killed: false,
                        output: Vec::new()
                    },
                    Record::Output {
                        id: 1,
                        stderr: false,
                        bytes: b"exit 1 0 0 0".to_vec()
                    },
                    Record::Exited {
                        id: 1,
                        code: 255,
                        stopped: true,
                        killed: true,
                        output: b"k=v\n".to_vec()
                    },
                ],
                "pieces of {size}"
            );
        }
    }

    #[test]
    fn a_host_without_perl_says_so() {
        let records = read(b"motd\r\nRUNBOOK-AGENT none\n", 3).expect("a greeting");
        assert_eq!(records, [Record::NoAgent]);
    }

    #[test]
    fn a_failure_carries_its_message() {
        let stream = b"RUNBOOK-AGENT ready 1\nfail 7 9\nno cwd \xff!";
        let records = read(stream, 4).expect("the agent's protocol");
        assert_eq!(
            records[1],
            Record::Failed {
                id: 7,
                message: "no cwd \u{fffd}!".into()
            }
        );
    }

    #[test]
    fn anything_else_after_the_greeting_is_refused() {
        for stream in [
            &b"RUNBOOK-AGENT ready 1\nhello there\n"[..],
            b"RUNBOOK-AGENT ready 1\nstarted 1\n",
            b"RUNBOOK-AGENT ready 1\nexit 1 0 2 0 0\n",
            b"RUNBOOK-AGENT ready 1\nout 1 -3\n",
        ] {
            assert!(
                read(stream, 64).is_err(),
                "{}",
                String::from_utf8_lossy(stream)
            );
        }
        let long = [&b"RUNBOOK-AGENT ready 1\n"[..], &[b'x'; 300]].concat();
        assert!(read(&long, 64).is_err());
    }

    #[test]
    fn a_run_record_is_length_prefixed_and_its_fields_nul_separated() {
        let request = RemoteRequest {
            shell: ["bash", "-eo", "pipefail", "-c"].map(String::from).to_vec(),
            script: "echo hi\n".into(),
            env: vec![("TOKEN".into(), "a b\nc".into())],
            cwd: Some("/srv".into()),
            grace: Duration::from_millis(1500),
        };
        let record = run_record(3, &request, "web1");
        let payload = [
            "1500",
            "1/srv",
            "web1",
            "3",
            "bash",
            "-eo",
            "pipefail",
            "1",
            "TOKEN",
            "a b\nc",
            "echo hi\n",
        ]
        .join("\0");
        assert_eq!(
            String::from_utf8(record).expect("text"),
            format!("run 3 {}\n{payload}", payload.len())
        );
        assert_eq!(control_record(3, JobControl::Abandon), b"stop 3\n");
    }
}
