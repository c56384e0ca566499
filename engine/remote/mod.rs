//! Running an instance on a remote host over the system's OpenSSH client, so the user's
//! `~/.ssh/config`, agent and `known_hosts` apply and nothing ever prompts: one control master
//! per host per run (`ControlMasters`), a session per instance whose script and environment
//! travel on stdin to a small wrapper (`RemoteSession`, `run_remote`), and errors that tell an
//! unreachable host from a script that failed (`RemoteError`).

mod error;
mod frames;
mod masters;
mod run;
mod session;
mod target;
mod wrapper;

pub use error::RemoteError;
pub use masters::ControlMasters;
pub use run::{RemoteEnd, RemoteOutcome, run_remote};
pub use session::{RemoteExit, RemoteSession};
pub use target::SshTarget;
pub use wrapper::RemoteRequest;
