//! Why an instance could not run on its host (`RemoteError`), told apart from a script that
//! ran and failed: the host could not be reached, its key or our key was refused, the
//! connection dropped, or the host could not start the script. Also reading OpenSSH's own
//! messages to say which.

use super::SshTarget;

/// A failure of the transport, never of the script: a script's exit status (255 included)
/// is an outcome (`RemoteEnd`), not one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The connection could not be made: refused, timed out, name not resolved. The script
    /// never started, so there is nothing to compensate.
    #[error("could not connect to {host} ({endpoint}): {cause}")]
    Connect {
        host: String,
        endpoint: String,
        cause: String,
    },
    /// The host's key is unknown or changed, and nothing allows it.
    #[error("refused the host key of {host} ({endpoint}): {cause}")]
    HostKey {
        host: String,
        endpoint: String,
        cause: String,
    },
    /// The host refused every key offered (or would have needed a password).
    #[error("{host} ({endpoint}) refused the authentication: {cause}")]
    Authentication {
        host: String,
        endpoint: String,
        cause: String,
    },
    /// The connection ended before the wrapper reported the end of the script. When
    /// `started`, the wrapper had reported the script's start (and stopped its process group
    /// when it noticed the end of the connection); when not, the start may still have
    /// happened with its report lost.
    #[error(
        "the connection to {host} ({endpoint}) dropped {}{}",
        if *started { "while the step ran" } else { "before the step was known to start" },
        cause.as_ref().map(|cause| format!(": {cause}")).unwrap_or_default()
    )]
    Dropped {
        host: String,
        endpoint: String,
        started: bool,
        cause: Option<String>,
    },
    /// Connected, but the host could not start the script (no `setsid`, no temporary
    /// directory, a missing working directory).
    #[error("cannot run the step on {host}: {message}")]
    Host { host: String, message: String },
    /// What was asked cannot be sent (an environment name a shell cannot export, a NUL byte).
    #[error("cannot send the step to {host}: {message}")]
    Request { host: String, message: String },
    /// The local `ssh` could not be started (not installed, out of processes).
    #[error("cannot start `ssh` for {host}: {message}")]
    Spawn { host: String, message: String },
}

impl RemoteError {
    /// Whether the script may have run, so the instance may have something to compensate:
    /// only after a dropped connection (the program had been sent). Every other error comes
    /// before the script can start.
    pub fn script_may_have_run(&self) -> bool {
        matches!(self, RemoteError::Dropped { .. })
    }

    pub(super) fn dropped(target: &SshTarget, started: bool, cause: Option<String>) -> RemoteError {
        RemoteError::Dropped {
            host: target.name.clone(),
            endpoint: target.endpoint(),
            started,
            cause,
        }
    }

    pub(super) fn host(target: &SshTarget, message: impl Into<String>) -> RemoteError {
        RemoteError::Host {
            host: target.name.clone(),
            message: message.into(),
        }
    }

    pub(super) fn request(target: &SshTarget, message: impl Into<String>) -> RemoteError {
        RemoteError::Request {
            host: target.name.clone(),
            message: message.into(),
        }
    }

    pub(super) fn spawn(target: &SshTarget, error: &std::io::Error) -> RemoteError {
        RemoteError::Spawn {
            host: target.name.clone(),
            message: error.to_string(),
        }
    }

    /// Reads what `ssh` printed when it could not open the connection.
    pub(super) fn from_ssh_stderr(target: &SshTarget, stderr: &str) -> RemoteError {
        let host = target.name.clone();
        let endpoint = target.endpoint();
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        let any = |needle: &str| {
            lines
                .iter()
                .any(|line| line.to_ascii_lowercase().contains(needle))
        };
        if any("remote host identification has changed") {
            return RemoteError::HostKey {
                host,
                endpoint,
                cause: "its key changed since it was recorded in known_hosts (a reinstalled \
                        host, or someone in between); check it, then update known_hosts"
                    .into(),
            };
        }
        if any("host key verification failed") {
            // With BatchMode, OpenSSH says no more than this for a key it does not know,
            // whether StrictHostKeyChecking is `ask` (its default) or `yes`.
            return RemoteError::HostKey {
                host,
                endpoint,
                cause: "its key is not in known_hosts and ssh may not ask (BatchMode); add it \
                        (`ssh-keyscan`) or allow it with `ssh.options` (StrictHostKeyChecking)"
                    .into(),
            };
        }
        if any("permission denied") || any("too many authentication failures") {
            return RemoteError::Authentication {
                host,
                endpoint,
                cause: last_line(&lines),
            };
        }
        let cause = if any("connection refused") {
            "connection refused".to_string()
        } else if any("timed out") {
            "connection timed out".to_string()
        } else if any("could not resolve hostname") {
            "could not resolve the host name".to_string()
        } else if any("no route to host") {
            "no route to host".to_string()
        } else if any("network is unreachable") {
            "network is unreachable".to_string()
        } else if lines.is_empty() {
            "ssh exited without saying why".to_string()
        } else {
            last_line(&lines)
        };
        RemoteError::Connect {
            host,
            endpoint,
            cause,
        }
    }
}

fn last_line(lines: &[&str]) -> String {
    let line = lines
        .last()
        .copied()
        .unwrap_or("ssh exited without saying why");
    let line = line.strip_prefix("ssh: ").unwrap_or(line);
    line.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        let mut target = SshTarget::new("web3", "10.0.0.13");
        target.port = Some(2222);
        target
    }

    #[test]
    fn connection_refused_names_host_and_address() {
        let error = RemoteError::from_ssh_stderr(
            &target(),
            "ssh: connect to host 10.0.0.13 port 2222: Connection refused\r\n",
        );
        assert_eq!(
            error.to_string(),
            "could not connect to web3 (10.0.0.13:2222): connection refused"
        );
    }

    #[test]
    fn unknown_host_key_is_a_host_key_refusal() {
        let error = RemoteError::from_ssh_stderr(
            &target(),
            "No ED25519 host key is known for [10.0.0.13]:2222 and you have requested strict checking.\nHost key verification failed.\n",
        );
        assert!(matches!(error, RemoteError::HostKey { .. }), "{error:?}");
        assert!(error.to_string().contains("not in known_hosts"), "{error}");
    }

    #[test]
    fn a_changed_host_key_says_so() {
        let error = RemoteError::from_ssh_stderr(
            &target(),
            "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
        );
        assert!(matches!(error, RemoteError::HostKey { .. }), "{error:?}");
        assert!(error.to_string().contains("its key changed"), "{error}");
    }

    #[test]
    fn permission_denied_is_an_authentication_refusal() {
        let error = RemoteError::from_ssh_stderr(
            &target(),
            "deploy@10.0.0.13: Permission denied (publickey).\n",
        );
        assert_eq!(
            error.to_string(),
            "web3 (10.0.0.13:2222) refused the authentication: deploy@10.0.0.13: Permission denied (publickey)"
        );
    }
}
