//! The host agent through the binary (README "The transport"): one agent per host per run runs
//! every step on the host as a job of its own, several at once, their output kept apart; it
//! learns of a step's end even when no SIGCHLD ever reaches it; it does not spin while a step
//! runs and is gone with the run, finished or killed; a host without perl runs each step in an
//! ssh session of its own instead.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fleet::Hosts;
use common::runs::run_directory;
use common::sshd::path_without_perl;
use common::{Test, cpu_ticks, json_events, processes_with};

const LIMIT: Duration = Duration::from_secs(60);

fn log(directory: &Path, name: &str) -> String {
    std::fs::read_to_string(directory.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

/// The lines of `log` that are the step's own output (the log's lines carry a prefix; the
/// output's words are found anywhere in a line).
fn output_lines(log: &str, word: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(word))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until no process of the host's sessions is left.
fn assert_sessions_gone(hosts: &Hosts) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for server in &hosts.servers {
        while !server.session_processes().is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes of {}'s sessions outlived the run: {:?}",
                server.name,
                server.session_processes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn concurrent_instances_on_one_host_run_on_one_agent_with_their_output_kept_apart() {
    let hosts = Hosts::start(&["web1"]);
    let mut steps = String::new();
    for step in 0..6 {
        steps.push_str(&format!(
            "  - id: s{step}\n    on: web\n    run: |\n      for i in 1 2 3 4 5 6 7 8; do echo \"mark-s{step} out $i\"; echo \"mark-s{step} err $i\" >&2; sleep 0.02; done\n      echo \"parent=$(cat /proc/$PPID/comm) $PPID\" > {{{{host.vars.root}}}}/s{step}\n"
        ));
    }
    let runbook = format!(
        "version: 1\nname: many\nconcurrency: 6\n{}steps:\n{steps}",
        hosts.yaml()
    );
    let output = Test::new()
        .runbook(&runbook)
        .args(["run", "{file}", "--progress", "none"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let directory = run_directory(&output);
    let mut parents = Vec::new();
    for step in 0..6 {
        let log = log(&directory, &format!("s{step}@web1"));
        let own = output_lines(&log, &format!("mark-s{step} "));
        assert_eq!(own.len(), 16, "s{step}'s log:\n{log}");
        assert_eq!(
            output_lines(&log, "mark-s").len(),
            16,
            "another step's output in s{step}'s log:\n{log}"
        );
        parents.extend(hosts.lines("web1", &format!("s{step}")));
    }
    parents.dedup();
    assert_eq!(parents.len(), 1, "one parent for every step: {parents:?}");
    assert!(parents[0].starts_with("parent=perl "), "{parents:?}");
    assert_eq!(hosts.servers[0].connections(), 1);
    assert_sessions_gone(&hosts);
}

/// A perl module the host's perl loads first (`PERL5OPT`): the agent runs with SIGCHLD
/// blocked, so no step's exit ever reaches it as a signal. The limiting case of a race: perl
/// runs a signal's handler only between two of its ops, so a SIGCHLD that came after the
/// agent's last look and before `select` slept had its handler (the self-pipe's byte) wait
/// for `select` to return, and with the step's output already at its end nothing else woke
/// the agent: the run waited for ever (tests/fleet_agent.rs's six steps, once in a suite).
const SIGCHLD_BLOCKED: &str = "package RunbookTestNoSigchld;\nuse POSIX ();\nPOSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(POSIX::SIGCHLD()));\n";

/// As `SIGCHLD_BLOCKED`, on a host whose kernel has no `pidfd_open` (before Linux 5.3, or a
/// seccomp filter refuses it): perl's `syscall` fails as it would there.
const NO_PIDFD: &str =
    "BEGIN { *CORE::GLOBAL::syscall = sub { $! = POSIX::ENOSYS(); return -1 } }\n";

/// Steps on one host whose agent never gets a SIGCHLD (`module` for its perl): each one ends
/// with its output, its `RUNBOOK_OUTPUT` and its exit status, on the agent, which watches
/// their exits through pidfds when `pidfd` (else it looks for them now and then).
fn steps_end_without_a_sigchld(module: &str, pidfd: bool) {
    let library = tempfile::tempdir().expect("a directory for the perl module");
    std::fs::write(
        library.path().join("RunbookTestNoSigchld.pm"),
        format!("{module}1;\n"),
    )
    .expect("write the perl module");
    let library_path = library.path().display().to_string();
    let hosts = Hosts::start_with_env(
        &["web1"],
        &[
            ("PERL5LIB", &library_path),
            ("PERL5OPT", "-MRunbookTestNoSigchld"),
        ],
    );
    let mut steps = String::new();
    for step in 0..3 {
        steps.push_str(&format!(
            "  - id: s{step}\n    on: web\n    run: |\n      echo \"mark-s{step} out\"; echo \"mark-s{step} err\" >&2\n      echo \"parent=$(cat /proc/$PPID/comm)\" > {{{{host.vars.root}}}}/s{step}\n      echo \"n={step}\" >> \"$RUNBOOK_OUTPUT\"\n      ls -l /proc/$PPID/fd > {{{{host.vars.root}}}}/fds-s{step} 2>/dev/null || true\n"
        ));
    }
    // One more after the others, its status its own.
    steps.push_str("  - id: last\n    on: web\n    needs: [s0, s1, s2]\n    run: |\n      echo \"after {{steps.s0.outputs.n}}{{steps.s1.outputs.n}}{{steps.s2.outputs.n}}\"\n      exit 3\n");
    let runbook = format!(
        "version: 1\nname: no-sigchld\nconcurrency: 3\n{}steps:\n{steps}",
        hosts.yaml()
    );
    let output = Test::new()
        .runbook(&runbook)
        .args(["--log-format", "json", "run", "{file}"])
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let events = json_events(&output.stdout);
    let finished = |step: &str| {
        events
            .iter()
            .find(|event| event["event"] == "step_finished" && event["step"] == step)
            .unwrap_or_else(|| panic!("no end of {step}:\n{}", output.snapshot()))
            .clone()
    };
    let directory = run_directory(&output);
    for step in 0..3 {
        let end = finished(&format!("s{step}@web1"));
        assert_eq!(end["status"], "succeeded", "{end}");
        let log = log(&directory, &format!("s{step}@web1"));
        assert_eq!(
            output_lines(&log, &format!("mark-s{step} ")).len(),
            2,
            "{log}"
        );
        assert_eq!(
            hosts.lines("web1", &format!("s{step}")),
            ["parent=perl"],
            "s{step} ran on the agent"
        );
        // The agent's descriptors while the step ran (it runs once its script was sent; an
        // other job's, closed as `ls` listed them, may be missing: this one's stays).
        let descriptors = hosts.lines("web1", &format!("fds-s{step}")).join("\n");
        assert_eq!(descriptors.contains("[pidfd]"), pidfd, "{descriptors}");
    }
    let last = finished("last@web1");
    assert_eq!(last["status"], "failed", "{last}");
    assert!(last.to_string().contains("exit code 3"), "{last}");
    let last_log = log(&directory, "last@web1");
    assert!(last_log.contains("after 012"), "{last_log}");
    assert_eq!(hosts.servers[0].connections(), 1);
    assert_sessions_gone(&hosts);
}

#[test]
fn a_step_ends_when_its_exit_never_reaches_the_agent_as_a_signal() {
    steps_end_without_a_sigchld(SIGCHLD_BLOCKED, true);
}

#[test]
fn without_pidfd_a_step_still_ends_when_its_exit_never_reaches_the_agent_as_a_signal() {
    steps_end_without_a_sigchld(&format!("{SIGCHLD_BLOCKED}{NO_PIDFD}"), false);
}

#[test]
fn the_agent_waits_without_spinning_and_is_gone_with_the_run() {
    let hosts = Hosts::start(&["web1"]);
    let test = Test::new();
    let runbook = format!(
        "version: 1\nname: quiet\n{}steps:\n  - id: long\n    on: web\n    run: |\n      echo $PPID > {agent}.new && mv {agent}.new {agent}\n      while [ ! -e {release} ]; do sleep 0.1; done\n",
        hosts.yaml(),
        agent = test.path().join("agent").display(),
        release = test.path().join("release").display(),
    );
    let mut running = test
        .runbook(&runbook)
        .args(["run", "{file}", "--progress", "none"])
        .spawn();
    running.wait_for_file("agent", LIMIT);
    let agent: u32 = std::fs::read_to_string(running.path().join("agent"))
        .expect("the agent's pid")
        .trim()
        .parse()
        .expect("a pid");
    let before = cpu_ticks(agent);
    // The step polls ten times a second; the agent only waits for it meanwhile.
    let step_polls = Instant::now();
    while step_polls.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(agent) - before;
    std::fs::write(running.path().join("release"), "").expect("release");
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        used <= 10,
        "the agent used {used} ticks of CPU while its step waited"
    );
    assert_sessions_gone(&hosts);
}

#[test]
fn a_killed_engine_leaves_no_agent_and_no_step_process_on_the_host() {
    let hosts = Hosts::start(&["web1"]);
    let test = Test::new();
    let word = format!("agent-orphan-{}", std::process::id());
    let runbook = format!(
        "version: 1\nname: killed\n{}steps:\n  - id: long\n    on: web\n    grace: 1s\n    run: |\n      sh -c 'touch {started}; sleep 120; : {word}' &\n      wait\n",
        hosts.yaml(),
        started = test.path().join("started").display(),
    );
    let mut running = test
        .runbook(&runbook)
        .args(["run", "{file}", "--progress", "none"])
        .spawn();
    running.wait_for_file("started", LIMIT);
    assert!(!processes_with(&word).is_empty());
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = running.finish(LIMIT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_with(&word).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the step outlived the engine: {:?}",
            processes_with(&word)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_sessions_gone(&hosts);
}

#[test]
fn a_host_without_perl_runs_each_step_in_a_session_of_its_own() {
    let path = path_without_perl();
    let hosts = Hosts::start_with_env(&["web1"], &[("PATH", &path.path().display().to_string())]);
    let test = Test::new();
    let runbook = format!(
        "version: 1\nname: no-perl\n{}steps:\n  - id: deploy\n    on: web\n    run: |\n      command -v perl || echo \"no perl; parent=$(cat /proc/$PPID/comm)\"\n      echo deployed > {{{{host.vars.root}}}}/deployed\n      echo \"version=2\" >> \"$RUNBOOK_OUTPUT\"\n    rollback: rm {{{{host.vars.root}}}}/deployed\n  - id: check\n    on: web\n    needs: [deploy]\n    run: |\n      echo \"checking {{{{steps.deploy.outputs.version}}}}\"\n      exit 7\n",
        hosts.yaml()
    );
    let output = test
        .runbook(&runbook)
        .args(["run", "{file}", "--progress", "none"])
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let directory = run_directory(&output);
    let deploy = log(&directory, "deploy@web1");
    assert!(deploy.contains("no perl; parent=sh"), "{deploy}");
    assert!(
        log(&directory, "check@web1").contains("checking 2"),
        "{}",
        log(&directory, "check@web1")
    );
    // The failure undid the deploy on the host.
    assert!(!hosts.root("web1").join("deployed").exists());
    assert_sessions_gone(&hosts);
}
