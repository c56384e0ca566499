//! Simulated hosts for fleet tests: one real sshd per host on 127.0.0.1, each with a root
//! directory (the host var `root`), all in group `web`, and the `hosts`/`ssh` keys that
//! reach them.

use std::path::PathBuf;

use super::sshd::{SshServer, known_hosts_of};

/// Simulated hosts and the runbook text that reaches them.
pub struct Hosts {
    pub servers: Vec<SshServer>,
    pub known_hosts: tempfile::TempDir,
}

impl Hosts {
    pub fn start(names: &[&str]) -> Hosts {
        Hosts::start_with_env(names, &[])
    }

    /// As `start`, with more variables for the sessions' environment (sshd's `SetEnv`).
    pub fn start_with_env(names: &[&str], environment: &[(&str, &str)]) -> Hosts {
        let servers: Vec<SshServer> = names
            .iter()
            .map(|name| SshServer::start_with_env(name, environment))
            .collect();
        let known_hosts = known_hosts_of(&servers);
        for server in &servers {
            std::fs::create_dir_all(server.directory().join("root")).expect("the host's root");
        }
        Hosts {
            servers,
            known_hosts,
        }
    }

    /// The `hosts` and `ssh` keys: every host in group `web`.
    pub fn yaml(&self) -> String {
        let mut text = String::from("hosts:\n");
        for server in &self.servers {
            text.push_str(&format!(
                "  {}: {{ address: 127.0.0.1, port: {}, identity_file: \"{}\", groups: [web], vars: {{ root: \"{}\" }} }}\n",
                server.name,
                server.port,
                server.client_key.display(),
                self.root(&server.name).display()
            ));
        }
        text.push_str(&format!(
            "ssh:\n  connect_timeout: 5s\n  options: {{ UserKnownHostsFile: \"{}\", GlobalKnownHostsFile: /dev/null, StrictHostKeyChecking: \"yes\", IdentitiesOnly: \"yes\" }}\n",
            self.known_hosts.path().join("known_hosts").display()
        ));
        text
    }

    pub fn server(&self, name: &str) -> &SshServer {
        self.servers
            .iter()
            .find(|server| server.name == name)
            .expect("a host of the test")
    }

    pub fn root(&self, name: &str) -> PathBuf {
        self.server(name).directory().join("root")
    }

    /// The lines of `file` in host `name`'s root, empty when absent.
    pub fn lines(&self, name: &str, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.root(name).join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
