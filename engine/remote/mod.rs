//! Running an instance on a remote host over the system's OpenSSH client, so the user's
//! `~/.ssh/config`, agent and `known_hosts` apply and nothing ever prompts: one control master
//! per host per run (`ControlMasters`), an agent per host per run on a session through it that
//! runs each instance as a job (`agent.pl`; a session of its own per instance with a small
//! wrapper on a host without perl), the script and its environment on stdin, never on a
//! command line (`RemoteSession`, `run_remote`), and errors that tell an unreachable host
//! from a script that failed (`RemoteError`).

mod agent;
mod agent_job;
mod agent_records;
mod closing;
mod connection;
mod error;
mod frames;
mod masters;
mod run;
mod session;
mod step_session;
mod stop_deadlines;
mod target;
mod wrapper;

pub use agent::AGENT_SWITCH;
pub use error::RemoteError;
pub use masters::ControlMasters;
pub use run::{RemoteEnd, RemoteOutcome, run_remote};
pub use session::{RemoteExit, RemoteSession};
pub use target::SshTarget;
pub use wrapper::RemoteRequest;
