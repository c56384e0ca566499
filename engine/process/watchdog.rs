//! The watchdog process: started by the engine with a hidden argument, it learns over a pipe
//! which step process groups run, and when the pipe closes without a `bye` (the engine died,
//! even by SIGKILL) it stops them: SIGTERM, a short grace, SIGKILL, all within 2 s, then exits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, Signal};

use super::tree::StepTree;

/// The hidden first argument that makes the binary a watchdog; `main` checks it before the
/// command line is parsed.
pub(super) const ARGUMENT: &str = "__runbook-watchdog";

/// How long stopped groups get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(1000);
/// How often, during the grace, the watchdog looks whether everything is gone.
const POLL: Duration = Duration::from_millis(20);

/// One line on the pipe from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Message {
    /// `+ <group> <start time>`: a step's group, led by the process that started then.
    Register { group: u32, start_time: u64 },
    /// `- <group>`: the group is gone.
    Unregister { group: u32 },
    /// `bye`: the engine exits normally; stop nothing.
    Bye,
}

impl Message {
    pub(super) fn line(&self) -> String {
        match self {
            Message::Register { group, start_time } => format!("+ {group} {start_time}\n"),
            Message::Unregister { group } => format!("- {group}\n"),
            Message::Bye => "bye\n".to_string(),
        }
    }

    fn parse(line: &str) -> Option<Message> {
        let mut words = line.split_whitespace();
        let message = match words.next()? {
            "+" => Message::Register {
                group: words.next()?.parse().ok()?,
                start_time: words.next()?.parse().ok()?,
            },
            "-" => Message::Unregister {
                group: words.next()?.parse().ok()?,
            },
            "bye" => Message::Bye,
            _ => return None,
        };
        words.next().is_none().then_some(message)
    }
}

/// Runs the watchdog when the first argument asks for it, returning its exit code; `None`
/// otherwise. Call it first thing in `main`.
pub fn watchdog_main() -> Option<i32> {
    if std::env::args_os().nth(1).as_deref() != Some(ARGUMENT.as_ref()) {
        return None;
    }
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("error: `{ARGUMENT}` is internal to `runbook`: it reads a pipe from the engine, not a terminal\n").as_bytes(),
        );
        return Some(2);
    }
    ignore_terminal_signals();
    close_inherited_descriptors();
    let groups = follow(std::io::stdin().lock(), gather);
    if let Some(groups) = groups {
        stop(&groups);
    }
    Some(0)
}

/// Once the pipe is empty, how long the watchdog lets the engine's next messages gather before
/// it reads again: meanwhile the engine's writes wake no one, so a step costs the engine two
/// pipe writes and no wakeup of this process (a context switch for both). The end of the pipe
/// (the engine exiting or dying) still wakes it at once. With nothing written it sleeps in
/// `read`, with no timer.
const GATHER: Duration = Duration::from_millis(10);

/// Waits until `GATHER` has passed or the pipe on stdin has no writer left. Only a hangup
/// is asked for, and a write into the pipe does not wake a `poll` that asks for no input.
fn gather() {
    let mut descriptor = nix::libc::pollfd {
        fd: nix::libc::STDIN_FILENO,
        events: 0,
        revents: 0,
    };
    let timeout = i32::try_from(GATHER.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: poll reads and writes the one `pollfd` it is given and nothing else. Its result
    // does not matter: the next `read` finds what there is.
    let _ = unsafe { nix::libc::poll(&raw mut descriptor, 1, timeout) };
}

/// Reads the engine's messages until `bye` (returns `None`) or the end of the pipe (returns the
/// groups still registered).
/// `gather` is called each time a read emptied the pipe.
fn follow(mut input: impl std::io::Read, mut gather: impl FnMut()) -> Option<BTreeMap<u32, u64>> {
    let mut groups = BTreeMap::new();
    let mut buffer = vec![0; 16 * 1024];
    // Bytes of a line not complete yet.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buffer[..read]);
        let mut consumed = 0;
        while let Some(end) = pending[consumed..].iter().position(|&byte| byte == b'\n') {
            let line = &pending[consumed..consumed + end];
            consumed += end + 1;
            if apply(&mut groups, line) {
                return None;
            }
        }
        pending.drain(..consumed);
        if read < buffer.len() {
            gather();
        }
    }
    // A last line without its newline counts too.
    if apply(&mut groups, &pending) {
        return None;
    }
    Some(groups)
}

/// Applies one line to `groups`; true for `bye`. Written by the engine alone: a line it cannot
/// have written is skipped.
fn apply(groups: &mut BTreeMap<u32, u64>, line: &[u8]) -> bool {
    match std::str::from_utf8(line).ok().and_then(Message::parse) {
        Some(Message::Register { group, start_time }) => {
            groups.insert(group, start_time);
        }
        Some(Message::Unregister { group }) => {
            groups.remove(&group);
        }
        Some(Message::Bye) => return true,
        None => {}
    }
    false
}

/// A Ctrl-C or a hangup reaches the terminal's foreground group; the engine handles them with
/// its orderly cancel, and the watchdog must outlive it to be of use. Also called in the
/// watchdog's child before exec, so only sigaction may happen here.
pub(super) fn ignore_terminal_signals() {
    for signal in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler, so nothing runs in a signal context;
        // the process is single-threaded at this point (or a child between fork and exec).
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) };
    }
}

/// Everything but stdin, stdout and stderr: a descriptor the engine failed to mark
/// close-on-exec (a step's output pipe, the run lock) must not live on in the watchdog.
fn close_inherited_descriptors() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let descriptors: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&descriptor| descriptor > 2)
        .collect();
    for descriptor in descriptors {
        // The descriptor of the directory listing is closed already; closing it again fails
        // harmlessly with EBADF.
        let _ = nix::unistd::close(descriptor);
    }
}

/// SIGTERM to every registered group still ours (and to what its leader started that left the
/// group), up to `GRACE` for them to exit, then SIGKILL to what remains.
fn stop(groups: &BTreeMap<u32, u64>) {
    let mut targets = StepTree::of_groups(groups.iter().map(|(&group, &start)| (group, start)));
    if targets.is_empty() {
        return;
    }
    targets.signal(Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while targets.alive() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    targets.refresh();
    targets.signal(Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Register {
                group: 4242,
                start_time: 987_654_321,
            },
            Message::Unregister { group: 7 },
            Message::Bye,
        ] {
            let line = message.line();
            assert!(line.ends_with('\n'));
            assert_eq!(Message::parse(line.trim_end()), Some(message));
        }
    }

    #[test]
    fn malformed_lines_are_not_messages() {
        for line in [
            "", "+ 12", "+ x 3", "- ", "- 1 2", "bye now", "hello", "+ 1 2 3",
        ] {
            assert_eq!(Message::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn bye_means_stop_nothing_and_end_of_pipe_returns_what_is_registered() {
        let input = "+ 10 100\n+ 11 110\n- 10\nbye\n+ 12 120\n";
        assert_eq!(follow(input.as_bytes(), || {}), None);
        let input = "+ 10 100\n+ 11 110\ngarbage\n- 10\n+ 12 120\n";
        let groups = follow(input.as_bytes(), || {}).expect("no bye");
        assert_eq!(groups, BTreeMap::from([(11, 110), (12, 120)]));
        assert_eq!(follow(&b""[..], || {}), Some(BTreeMap::new()));
    }

    #[test]
    fn messages_split_across_reads_and_a_last_line_without_newline_count() {
        // Each read gives three bytes, as a pipe may cut the engine's writes anywhere.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                let length = self.0.len().min(3).min(buffer.len());
                buffer[..length].copy_from_slice(&self.0[..length]);
                self.0 = &self.0[length..];
                Ok(length)
            }
        }
        let mut gathered = 0;
        let groups = follow(Trickle(b"+ 10 100\n+ 11 110\n- 10\n+ 12 120"), || {
            gathered += 1
        });
        assert_eq!(groups, Some(BTreeMap::from([(11, 110), (12, 120)])));
        assert!(gathered > 0);
        assert_eq!(follow(Trickle(b"+ 10 100\nbye"), || {}), None);
    }
}
