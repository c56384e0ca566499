//! One host as the transport sees it (`SshTarget`): where to connect, as whom, and the OpenSSH
//! options that apply to it, turned into the arguments of the system's `ssh`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// A host to run instances on, as the inventory resolves it (its own keys over the `ssh`
/// defaults). The user's `~/.ssh/config`, agent and `known_hosts` apply on top: nothing here
/// is required but the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The inventory name (`web3`), used in messages and as `RUNBOOK_HOST`.
    pub name: String,
    /// What `ssh` connects to: a name it resolves (or finds in `~/.ssh/config`) or an address.
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    /// Any OpenSSH option, in order (`StrictHostKeyChecking`, `UserKnownHostsFile`, ...).
    pub options: Vec<(String, String)>,
}

impl SshTarget {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> SshTarget {
        SshTarget {
            name: name.into(),
            address: address.into(),
            port: None,
            user: None,
            identity_file: None,
            connect_timeout: None,
            options: Vec::new(),
        }
    }

    /// `address:port` as messages show it (`10.0.0.13:22`, `[::1]:2222`); 22 when no port
    /// is given, which is OpenSSH's default unless the user's config says otherwise.
    pub fn endpoint(&self) -> String {
        let port = self.port.unwrap_or(22);
        if self.address.contains(':') {
            format!("[{}]:{port}", self.address)
        } else {
            format!("{}:{port}", self.address)
        }
    }

    /// The arguments that name the host and how to reach it, ending with `--` and the
    /// destination. OpenSSH keeps the first value it gets for an option, so the options the
    /// transport depends on (`forced`) come before the runbook's, which come before the
    /// defaults the runbook may override (`defaults`); `~/.ssh/config` is read after all.
    pub(super) fn arguments(
        &self,
        forced: &[(&str, String)],
        defaults: &[(&str, String)],
    ) -> Vec<OsString> {
        let mut arguments: Vec<OsString> = Vec::new();
        let mut option = |name: &str, value: &str| {
            arguments.push("-o".into());
            arguments.push(format!("{name}={value}").into());
        };
        for (name, value) in forced {
            option(name, value);
        }
        for (name, value) in &self.options {
            option(name, value);
        }
        if let Some(timeout) = self.connect_timeout {
            // OpenSSH counts whole seconds; a timeout under one second would mean none.
            let seconds = timeout.as_secs_f64().ceil().max(1.0);
            option("ConnectTimeout", &format!("{seconds:.0}"));
        }
        for (name, value) in defaults {
            option(name, value);
        }
        if let Some(port) = self.port {
            arguments.push("-p".into());
            arguments.push(port.to_string().into());
        }
        if let Some(user) = &self.user {
            arguments.push("-l".into());
            arguments.push(user.into());
        }
        if let Some(identity_file) = &self.identity_file {
            arguments.push("-i".into());
            arguments.push(identity_file.into());
        }
        arguments.push("--".into());
        arguments.push(self.address.clone().into());
        arguments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_brackets_ipv6_and_defaults_the_port() {
        let mut target = SshTarget::new("web3", "10.0.0.13");
        assert_eq!(target.endpoint(), "10.0.0.13:22");
        target.address = "::1".into();
        target.port = Some(2222);
        assert_eq!(target.endpoint(), "[::1]:2222");
    }

    #[test]
    fn forced_options_come_before_the_runbook_options_and_defaults_after() {
        let mut target = SshTarget::new("web1", "-oProxyCommand=evil");
        target.options = vec![("BatchMode".into(), "no".into())];
        target.port = Some(2222);
        let arguments: Vec<String> = target
            .arguments(
                &[("BatchMode", "yes".into())],
                &[("ServerAliveInterval", "5".into())],
            )
            .into_iter()
            .map(|argument| argument.into_string().expect("utf-8"))
            .collect();
        assert_eq!(
            arguments,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "BatchMode=no",
                "-o",
                "ServerAliveInterval=5",
                "-p",
                "2222",
                "--",
                "-oProxyCommand=evil"
            ]
        );
    }
}
