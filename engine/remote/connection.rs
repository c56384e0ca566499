//! A live control master to open sessions through (`Connection`), and the last lines it
//! printed (`RecentLines`), kept to say why a session or the master itself ended.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use super::SshTarget;
use super::wrapper::BOOTSTRAP;

/// The last lines a master printed, kept to say why its connection ended.
pub(super) type RecentLines = Arc<Mutex<Recent>>;

#[derive(Debug, Default)]
pub(super) struct Recent {
    lines: VecDeque<String>,
    /// Lines printed since the master started, kept or not.
    total: usize,
}

impl Recent {
    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept lines printed after the first `total` ones.
    pub fn since(&self, total: usize) -> Vec<String> {
        let new = self.total.saturating_sub(total).min(self.lines.len());
        self.lines
            .iter()
            .skip(self.lines.len() - new)
            .cloned()
            .collect()
    }
}

const RECENT_LINES: usize = 20;

/// A live master to open sessions through.
#[derive(Debug, Clone)]
pub(super) struct Connection {
    pub socket: PathBuf,
    pub recent: RecentLines,
}

impl Connection {
    /// A session on `target` through this master whose command is the fixed bootstrap (a
    /// shell reading its program from stdin), its three pipes open: never prompting, in a
    /// process group of its own (a Ctrl-C is the engine's to handle), killed when dropped.
    pub fn session(&self, target: &SshTarget) -> Command {
        let forced = [
            ("BatchMode", "yes".to_string()),
            ("ControlMaster", "no".to_string()),
        ];
        let mut command = Command::new("ssh");
        command
            .arg("-T")
            .arg("-S")
            .arg(&self.socket)
            .args(target.arguments(&forced, &[]))
            .arg(BOOTSTRAP)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command
    }
}

/// Keeps the last lines of a master's stderr (read to its end, so the pipe never fills).
pub(super) async fn keep_lines(stderr: tokio::process::ChildStderr, recent: RecentLines) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(length) = reader.read_until(b'\n', &mut line).await {
        if length == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        line.clear();
        let mut recent = recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.lines.len() == RECENT_LINES {
            recent.lines.pop_front();
        }
        recent.lines.push_back(text);
        recent.total += 1;
    }
}

pub(super) fn lines_of(recent: &RecentLines) -> Vec<String> {
    lock(recent).since(0)
}

pub(super) fn lock(recent: &RecentLines) -> std::sync::MutexGuard<'_, Recent> {
    // Lines of text: still consistent after a panic elsewhere.
    recent.lock().unwrap_or_else(PoisonError::into_inner)
}
