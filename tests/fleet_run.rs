//! Running steps on hosts (SPEC §12) through the binary against real sshd servers on
//! 127.0.0.1, one per simulated host, each with its own root directory (the host var `root`):
//! instances `id@host` with outputs per host, a rolling failure undone batch by batch, a
//! `rollback RUN` of a run that succeeded, an unreachable host, `max_failed` and `--limit`.

mod common;

use std::path::{Path, PathBuf};

use common::sshd::SshServer;
use common::{Output, Test, json_events};

/// Simulated hosts and the runbook text that reaches them.
struct Hosts {
    servers: Vec<SshServer>,
    known_hosts: tempfile::TempDir,
}

impl Hosts {
    fn start(names: &[&str]) -> Hosts {
        let servers: Vec<SshServer> = names.iter().map(|name| SshServer::start(name)).collect();
        let known_hosts = tempfile::tempdir().expect("a directory for known_hosts");
        let text: String = servers
            .iter()
            .map(|server| std::fs::read_to_string(&server.known_hosts).expect("known_hosts"))
            .collect();
        std::fs::write(known_hosts.path().join("known_hosts"), text).expect("write known_hosts");
        for server in &servers {
            std::fs::create_dir_all(server.directory().join("root")).expect("the host's root");
        }
        Hosts {
            servers,
            known_hosts,
        }
    }

    /// The `hosts` and `ssh` keys: every host in group `web`.
    fn yaml(&self) -> String {
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

    fn server(&self, name: &str) -> &SshServer {
        self.servers
            .iter()
            .find(|server| server.name == name)
            .expect("a host of the test")
    }

    fn root(&self, name: &str) -> PathBuf {
        self.server(name).directory().join("root")
    }

    /// The lines of `file` in host `name`'s root, empty when absent.
    fn lines(&self, name: &str, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.root(name).join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// The run directory of the only run in the test's state directory.
fn run_directory(output: &Output) -> PathBuf {
    let runs = output.directory.join("xdg-state/runbook/runs");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&runs)
        .expect("the runs directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    entries.sort();
    entries.pop().expect("one run")
}

fn run_id(output: &Output) -> String {
    run_directory(output)
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a run id")
        .to_string()
}

fn log(directory: &Path, name: &str) -> String {
    std::fs::read_to_string(directory.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn instances_run_on_their_hosts_with_outputs_and_logs_per_instance() {
    let hosts = Hosts::start(&["web1", "web2"]);
    let runbook = format!(
        "version: 1\nname: fleet\n{}steps:\n  - id: deploy\n    on: web\n    run: |\n      echo \"deploying on $RUNBOOK_HOST\"\n      echo \"$RUNBOOK_HOST\" > {{{{host.vars.root}}}}/deployed\n      echo \"version=v-$RUNBOOK_HOST\" >> \"$RUNBOOK_OUTPUT\"\n    rollback: rm {{{{host.vars.root}}}}/deployed\n  - id: check\n    on: web\n    needs: [deploy]\n    run: echo \"{{{{steps.deploy.outputs.version}}}}\" > {{{{host.vars.root}}}}/checked\n",
        hosts.yaml()
    );
    let output = Test::new()
        .runbook(&runbook)
        .args(["--log-format", "json", "run", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for name in ["web1", "web2"] {
        assert_eq!(hosts.lines(name, "deployed"), [name]);
        assert_eq!(hosts.lines(name, "checked"), [format!("v-{name}")]);
    }
    let directory = run_directory(&output);
    assert!(
        log(&directory, "deploy@web2").contains("deploying on web2"),
        "{}",
        log(&directory, "deploy@web2")
    );
    let events = json_events(&output.stdout);
    let finished: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "step_finished")
        .filter_map(|event| event["step"].as_str())
        .collect();
    assert_eq!(finished.len(), 4, "{finished:?}");
    assert!(finished.contains(&"check@web1"), "{finished:?}");
    let show = Test::new()
        .args(["show", &run_id(&output)])
        .env(
            "XDG_STATE_HOME",
            &output.directory.join("xdg-state").display().to_string(),
        )
        .run();
    assert!(show.stdout.contains("deploy@web1"), "{}", show.snapshot());
    assert!(show.stdout.contains("check@web2"), "{}", show.snapshot());
}
