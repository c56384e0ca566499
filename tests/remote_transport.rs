//! The OpenSSH transport (`runbook::remote`) against real sshd servers on 127.0.0.1: output
//! and the script's real exit status, `RUNBOOK_OUTPUT` and `RUNBOOK_HOST`, a secret that
//! reaches the script but no command line, a timeout or a dying sshd that leaves no remote
//! process, an unreachable host and an unknown host key told apart from a failed script, and
//! one control master per host that is gone after the run.

mod common;
#[path = "e2e/secrets.rs"]
#[expect(dead_code, reason = "the file checks are for runs through the binary")]
mod secrets;

use std::path::Path;
use std::time::{Duration, Instant};

use common::processes_with;
use common::sshd::SshServer;
use runbook::process::{OutputChunk, OutputStream};
use runbook::remote::{
    ControlMasters, RemoteEnd, RemoteError, RemoteExit, RemoteOutcome, RemoteRequest,
    RemoteSession, SshTarget, run_remote,
};
use tokio::sync::{mpsc, watch};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn target(server: &SshServer) -> SshTarget {
    let mut target = SshTarget::new(server.name.clone(), "127.0.0.1");
    target.port = Some(server.port);
    target.identity_file = Some(server.client_key.clone());
    target.connect_timeout = Some(Duration::from_secs(5));
    target.options = server.client_options();
    target
}

fn request(script: &str) -> RemoteRequest {
    RemoteRequest {
        // The engine's default shell, as a local step gets it (the `-c` is dropped).
        shell: ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
            .map(String::from)
            .to_vec(),
        script: script.to_string(),
        env: Vec::new(),
        cwd: None,
        grace: Duration::from_secs(1),
    }
}

#[derive(Debug, Default)]
struct Collected {
    stdout: String,
    stderr: String,
}

/// Runs `request` with `run_remote`, collecting its output as the executor would.
/// Runs a script that would leave a marker file, in a session that must fail before the script
/// runs (`adjust` changes the request first): the error, once the marker is checked absent.
fn refused_before_running(
    target: &SshTarget,
    adjust: impl FnOnce(&mut RemoteRequest),
) -> RemoteError {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let ran = scratch.path().join("ran");
    let mut request = request(&format!("touch {}", ran.display()));
    adjust(&mut request);
    let error = runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, _) = run(&masters, target, &request, None).await;
        masters.close_all().await;
        result.expect_err("the session fails before the script runs")
    });
    assert!(!ran.exists(), "the script ran");
    error
}

async fn run(
    masters: &ControlMasters,
    target: &SshTarget,
    request: &RemoteRequest,
    timeout: Option<Duration>,
) -> (Result<RemoteOutcome, RemoteError>, Collected) {
    let (sender, receiver) = mpsc::channel(64);
    let collector = tokio::spawn(collect(receiver));
    let (_cancel, mut cancelled) = watch::channel(false);
    let result = run_remote(masters, target, request, timeout, sender, &mut cancelled).await;
    let collected = collector.await.expect("the output collector");
    (result, collected)
}

async fn collect(mut receiver: mpsc::Receiver<OutputChunk>) -> Collected {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(chunk) = receiver.recv().await {
        match chunk.stream {
            OutputStream::Stdout => stdout.extend(chunk.bytes),
            OutputStream::Stderr => stderr.extend(chunk.bytes),
        }
    }
    Collected {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Waits (bounded) until no process holds `marker` in its command line; a kill takes effect
/// a moment after it is sent. Fails the test naming the survivors.
fn assert_no_process_with(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let survivors = processes_with(marker);
        if survivors.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes outlived the step:\n{}",
            survivors.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the host's `TMPDIR` is empty: the wrapper cleans up after itself,
/// a moment after the engine has its report when the connection dropped.
fn assert_host_tmp_empty(server: &SshServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = server.tmp_files();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the wrapper left files in the host's TMPDIR: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A word no other process has in its command line.
fn marker(name: &str) -> String {
    format!("{name}-{}-{:?}", std::process::id(), Instant::now())
        .replace([' ', '{', '}', ':', '.', ','], "")
}

/// Starts a session of `request`, its output collected as the executor would.
async fn start_session(
    masters: &ControlMasters,
    target: &SshTarget,
    request: &RemoteRequest,
) -> (RemoteSession, tokio::task::JoinHandle<Collected>) {
    let (sender, receiver) = mpsc::channel(64);
    let collector = tokio::spawn(collect(receiver));
    let session = RemoteSession::start(masters, target, request, sender)
        .await
        .expect("the session starts");
    (session, collector)
}

/// Drops a session, which ends its output, and waits for the collector to be through.
async fn close_session(session: RemoteSession, collector: tokio::task::JoinHandle<Collected>) {
    drop(session);
    let _ = collector.await;
}

/// Closes the run's masters and checks that no process of theirs (named by their socket
/// directory) is left.
async fn close_leaving_nothing(masters: &ControlMasters) {
    masters.close_all().await;
    let directory = masters.directory().display().to_string();
    assert!(processes_with(&directory).is_empty());
}

/// Waits until `path` exists (the test's own timeout bounds it).
async fn appears(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The script's group ended by SIGKILL, leaving no process and no file on the host.
fn assert_killed_leaving_nothing(
    exit: Result<RemoteExit, RemoteError>,
    word: &str,
    rt: &tokio::runtime::Runtime,
    masters: &ControlMasters,
    server: &SshServer,
) {
    let exit = exit.expect("the wrapper reported the end");
    assert!(exit.killed && exit.stopped, "{exit:?}");
    assert_eq!(exit.code, 128 + 9, "{exit:?}");
    assert_no_process_with(word);
    rt.block_on(masters.close_all());
    assert_host_tmp_empty(server);
}

#[test]
fn output_streams_and_the_exit_status_is_the_scripts() {
    let server = SshServer::start("web1");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, output) = run(
            &masters,
            &target(&server),
            &request("echo to-stdout\necho to-stderr >&2\nprintf 'no newline'\nexit 3"),
            None,
        )
        .await;
        let outcome = result.expect("the script ran");
        assert_eq!(outcome.end, RemoteEnd::Exited(3));
        assert!(!outcome.killed);
        assert_eq!(output.stdout, "to-stdout\nno newline");
        assert_eq!(output.stderr, "to-stderr\n");
        masters.close_all().await;
    });
    assert_host_tmp_empty(&server);
}

#[test]
fn a_script_exiting_255_is_its_own_failure_not_the_connections() {
    let server = SshServer::start("web1");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, _) = run(&masters, &target(&server), &request("exit 255"), None).await;
        assert_eq!(
            result.expect("not a connection failure").end,
            RemoteEnd::Exited(255)
        );
        masters.close_all().await;
    });
}

#[test]
fn runbook_output_comes_back_and_the_script_leads_its_own_group() {
    let server = SshServer::start("web2");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let script = r#"
            echo "host=$RUNBOOK_HOST" >> "$RUNBOOK_OUTPUT"
            printf 'multi<<EOF\nline one\nline two\nEOF\n' >> "$RUNBOOK_OUTPUT"
            read -r _ _ _ _ group _ < /proc/$$/stat
            [ "$group" = "$$" ] && echo "own group"
            cat > /dev/null && echo "stdin is empty"
            echo "file=$RUNBOOK_OUTPUT"
        "#;
        let (result, output) = run(&masters, &target(&server), &request(script), None).await;
        let outcome = result.expect("the script ran");
        assert_eq!(outcome.end, RemoteEnd::Exited(0), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&outcome.output),
            "host=web2\nmulti<<EOF\nline one\nline two\nEOF\n"
        );
        assert!(output.stdout.contains("own group\n"), "{output:?}");
        assert!(output.stdout.contains("stdin is empty\n"), "{output:?}");
        let file = output
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix("file="))
            .expect("the script printed its output file");
        assert!(
            Path::new(file).starts_with(server.tmp_dir()),
            "{file} is not in the host's TMPDIR"
        );
        assert!(
            !Path::new(file).exists(),
            "the output file {file} was left on the host"
        );
        masters.close_all().await;
    });
    assert_host_tmp_empty(&server);
}

#[test]
fn a_secret_reaches_the_script_but_no_command_line_on_either_side() {
    let server = SshServer::start("db1");
    let secret = "s3cr3t-value-that-must-not-leak";
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let sleeping = scratch.path().join("sleeping");
    let watch = secrets::ArgvWatch::start(secret);
    let outcome = runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let mut request = request(&format!(
            "printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 >> \"$RUNBOOK_OUTPUT\"\n\
             touch {sleeping}\nsleep 1",
            sleeping = sleeping.display()
        ));
        request.env.push(("TOKEN".into(), secret.into()));
        let (result, output) = run(&masters, &target(&server), &request, None).await;
        masters.close_all().await;
        secrets::assert_absent(secret, &output.stdout, "stdout");
        secrets::assert_absent(secret, &output.stderr, "stderr");
        result.expect("the script ran")
    });
    watch.assert_clean();
    assert!(sleeping.exists());
    let expected = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1")
        .env("TOKEN", secret)
        .output()
        .expect("hash the secret here");
    assert_eq!(outcome.output, expected.stdout, "the secret did not arrive");
}

#[test]
fn a_timeout_stops_the_whole_remote_group() {
    let server = SshServer::start("web1");
    let word = marker("timeout");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        // The script and all it starts ignore SIGTERM, so only SIGKILL after the grace ends
        // them.
        let script = format!(
            "trap '' TERM\n\
             sh -c 'sleep 100; : {word}' &\n\
             sh -c 'sleep 100; : {word}' &\n\
             echo started\nwait"
        );
        let (result, output) = run(
            &masters,
            &target(&server),
            &request(&script),
            Some(Duration::from_secs(1)),
        )
        .await;
        let outcome = result.expect("a timeout, not a connection failure");
        assert_eq!(outcome.end, RemoteEnd::TimedOut(Duration::from_secs(1)));
        assert!(
            outcome.killed,
            "a script that ignores SIGTERM needs SIGKILL"
        );
        assert_eq!(output.stdout, "started\n");
        assert_no_process_with(&word);
        masters.close_all().await;
    });
    assert_host_tmp_empty(&server);
}

#[test]
fn a_dying_sshd_fails_the_instance_as_dropped_and_stops_its_group() {
    let mut server = SshServer::start("web4");
    let word = marker("dropped");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let sleeping = scratch.path().join("sleeping");
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    let script = format!(
        "sh -c 'sleep 60; : {word}' &\ntouch {}\nwait",
        sleeping.display()
    );
    let request = request(&script);
    let result = rt.block_on(async {
        let (mut session, collector) = start_session(&masters, &target, &request).await;
        // The sshd dies once the script sleeps and the engine has its start report.
        while !sleeping.exists() || session.remote_pid().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill();
        let result = session.wait().await;
        close_session(session, collector).await;
        result
    });
    let error = result.expect_err("the connection dropped");
    assert!(
        matches!(error, RemoteError::Dropped { started: true, .. }),
        "{error:?}"
    );
    assert!(error.script_may_have_run());
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the connection to web4 ({}) dropped while the step ran",
            target.endpoint()
        )),
        "{message}"
    );
    assert_no_process_with(&word);
    assert_host_tmp_empty(&server);
    rt.block_on(masters.close_all());
}

#[test]
fn an_unreachable_host_is_a_connection_failure_naming_host_and_address() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut target = SshTarget::new("web3", "127.0.0.1");
    target.port = Some(port);
    target.options = vec![(
        "UserKnownHostsFile".into(),
        scratch.path().join("known_hosts").display().to_string(),
    )];
    let error = refused_before_running(&target, |_| {});
    assert_eq!(
        error.to_string(),
        format!("could not connect to web3 (127.0.0.1:{port}): connection refused")
    );
    assert!(!error.script_may_have_run());
}

#[test]
fn an_unknown_host_key_is_refused_before_anything_runs() {
    let server = SshServer::start("web5");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let empty = scratch.path().join("known_hosts");
    std::fs::write(&empty, "").expect("an empty known_hosts");
    let mut target = target(&server);
    // What a user gets by default: OpenSSH's own `ask`, which BatchMode turns into a refusal.
    target.options = vec![
        ("UserKnownHostsFile".into(), empty.display().to_string()),
        ("GlobalKnownHostsFile".into(), "/dev/null".into()),
        ("IdentitiesOnly".into(), "yes".into()),
    ];
    let error = refused_before_running(&target, |_| {});
    assert!(matches!(error, RemoteError::HostKey { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "refused the host key of web5 (127.0.0.1:{}): its key is not in known_hosts and \
             ssh may not ask (BatchMode); add it (`ssh-keyscan`) or allow it with \
             `ssh.options` (StrictHostKeyChecking)",
            server.port
        )
    );
    assert_eq!(std::fs::read_to_string(&empty).expect("known_hosts"), "");
}

#[test]
fn one_master_serves_every_session_and_is_gone_after_close() {
    let server = SshServer::start("web6");
    let target = target(&server);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let directory = masters.directory().to_path_buf();
        let script = request("echo $RUNBOOK_HOST");
        let (first, second, third) = tokio::join!(
            run(&masters, &target, &script, None),
            run(&masters, &target, &script, None),
            run(&masters, &target, &script, None),
        );
        for (result, output) in [first, second, third] {
            assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
            assert_eq!(output.stdout, "web6\n");
        }
        let master = masters.master_pid("web6").await.expect("a live master");
        let (again, _) = run(&masters, &target, &script, None).await;
        assert_eq!(again.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(masters.master_pid("web6").await, Some(master));
        assert_eq!(server.connections(), 1, "{}", server.log());
        let socket_directory = directory.display().to_string();
        let agent = masters.agent_pid("web6").await.expect("the host's agent");
        assert_eq!(
            processes_with(&socket_directory).len(),
            2,
            "two ssh processes between steps: the master and the host's agent ({agent})"
        );

        masters.close_all().await;
        assert!(processes_with(&socket_directory).is_empty());
        assert_eq!(masters.master_pid("web6").await, None);
        assert_eq!(
            std::fs::read_dir(&directory)
                .expect("the socket directory")
                .count(),
            0,
            "no socket left"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&directory)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(masters);
        assert!(!directory.exists());
    });
}

#[test]
fn dropping_the_masters_without_closing_leaves_no_ssh_behind() {
    let server = SshServer::start("web7");
    let target = target(&server);
    let rt = runtime();
    let directory = rt.block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, _) = run(&masters, &target, &request("true"), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        masters.directory().display().to_string()
    });
    assert_no_process_with(&directory);
}

#[test]
fn cancelling_stops_the_script_with_sigterm_and_its_trap_runs() {
    let server = SshServer::start("web8");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let sleeping = scratch.path().join("sleeping");
    let bye = scratch.path().join("bye");
    let word = marker("cancel");
    let script = format!(
        "trap 'echo bye > {bye}; exit 0' TERM\n\
         sh -c 'sleep 100; : {word}' &\n\
         touch {sleeping}\nwait",
        bye = bye.display(),
        sleeping = sleeping.display()
    );
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    let request = request(&script);
    let (cancel, mut cancelled) = watch::channel(false);
    let canceller = std::thread::spawn({
        let sleeping = sleeping.clone();
        move || {
            wait_for_file(&sleeping);
            cancel.send_replace(true);
            cancel
        }
    });
    let outcome = rt.block_on(async {
        let (sender, receiver) = mpsc::channel(64);
        let collector = tokio::spawn(collect(receiver));
        let result = run_remote(&masters, &target, &request, None, sender, &mut cancelled).await;
        let _ = collector.await;
        result
    });
    let _cancel = canceller.join().expect("the canceller");
    let outcome = outcome.expect("cancelled, not a connection failure");
    assert_eq!(outcome.end, RemoteEnd::Cancelled);
    assert!(
        !outcome.killed,
        "the trap ended the script within the grace"
    );
    assert_eq!(
        std::fs::read_to_string(&bye).expect("the TERM trap ran"),
        "bye\n"
    );
    assert_no_process_with(&word);
    rt.block_on(masters.close_all());
    assert_host_tmp_empty(&server);
}

#[test]
fn a_missing_working_directory_is_the_hosts_problem_and_nothing_runs() {
    let server = SshServer::start("web9");
    let error = refused_before_running(&target(&server), |request| {
        request.cwd = Some("/no/such/directory".into());
    });
    assert_eq!(
        error.to_string(),
        "cannot run the step on web9: the working directory /no/such/directory does not exist"
    );
    assert!(!error.script_may_have_run());
}

#[test]
fn the_working_directory_and_the_shell_are_the_requests() {
    let server = SshServer::start("web10");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut request = request("pwd; echo \"$0\"");
    request.cwd = Some(scratch.path().display().to_string());
    request.shell = vec!["sh".into(), "-eu".into()];
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, output) = run(&masters, &target(&server), &request, None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(
            output.stdout,
            format!("{}\n/dev/fd/4\n", scratch.path().display())
        );
        masters.close_all().await;
    });
}

#[test]
fn a_large_script_and_a_large_output_go_through() {
    let server = SshServer::start("web11");
    // 300 KiB of script (more than any pipe holds) and 2 MiB of output.
    let padding = "# padding to make the script larger than a pipe buffer\n".repeat(6000);
    let script = format!("{padding}head -c 2097152 /dev/zero | tr '\\0' x\necho\necho done >&2");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, output) = run(&masters, &target(&server), &request(&script), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout.len(), 2 * 1024 * 1024 + 1);
        assert_eq!(output.stderr, "done\n");
        masters.close_all().await;
    });
}

#[test]
fn kill_now_skips_the_grace() {
    let server = SshServer::start("web12");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let sleeping = scratch.path().join("sleeping");
    let word = marker("killnow");
    let script = format!(
        "trap '' TERM\nsh -c 'sleep 100; : {word}' &\ntouch {}\nwait",
        sleeping.display()
    );
    let mut request = request(&script);
    request.grace = Duration::from_secs(600);
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    let exit = rt.block_on(async {
        let (mut session, collector) = start_session(&masters, &target, &request).await;
        appears(&sleeping).await;
        // The wrapper reports the script's pid before the script can touch the file, and
        // the stderr reader has had the time the file took to appear.
        while session.remote_pid().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        session.kill_now();
        let exit = session.wait().await;
        close_session(session, collector).await;
        exit
    });
    assert_killed_leaving_nothing(exit, &word, &rt, &masters, &server);
}

#[test]
fn a_master_whose_connection_dropped_is_opened_again() {
    let server = SshServer::start("web13");
    let target = target(&server);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (first, _) = run(&masters, &target, &request("true"), None).await;
        assert_eq!(first.expect("ran").end, RemoteEnd::Exited(0));
        let old = masters.master_pid("web13").await.expect("a live master");
        server.drop_connections();
        while masters.master_pid("web13").await.is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (second, output) = run(&masters, &target, &request("echo back"), None).await;
        assert_eq!(second.expect("ran again").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout, "back\n");
        let new = masters.master_pid("web13").await.expect("a live master");
        assert_ne!(new, old);
        assert_eq!(server.connections(), 2, "{}", server.log());
        masters.close_all().await;
    });
}

#[test]
fn two_hosts_get_a_master_each_and_close_all_closes_both() {
    let first = SshServer::start("app1");
    let second = SshServer::start("app2");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (first_target, second_target) = (target(&first), target(&second));
        let script = request("echo $RUNBOOK_HOST");
        let (one, two) = tokio::join!(
            run(&masters, &first_target, &script, None),
            run(&masters, &second_target, &script, None),
        );
        assert_eq!(one.1.stdout, "app1\n");
        assert_eq!(two.1.stdout, "app2\n");
        let pids = (
            masters.master_pid("app1").await.expect("a master for app1"),
            masters.master_pid("app2").await.expect("a master for app2"),
        );
        assert_ne!(pids.0, pids.1);
        close_leaving_nothing(&masters).await;
    });
}

#[test]
fn a_slow_output_receiver_still_gets_the_end_report() {
    let server = SshServer::start("web14");
    // 256 KiB on stderr, where the report follows it, read slowly: the session has ended long
    // before the receiver is through. Only the first chunks are slow: how many chunks the
    // output comes in depends on the load, and the hand-over after the end is bounded.
    let request = request("head -c 262144 /dev/zero | tr '\\0' e >&2\nexit 4");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (sender, mut receiver) = mpsc::channel::<OutputChunk>(1);
        let collector = tokio::spawn(async move {
            let (mut stderr, mut chunks) = (0, 0);
            while let Some(chunk) = receiver.recv().await {
                stderr += chunk.bytes.len();
                chunks += 1;
                if chunks <= 4 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
            }
            stderr
        });
        let (_cancel, mut cancelled) = watch::channel(false);
        let result = run_remote(
            &masters,
            &target(&server),
            &request,
            None,
            sender,
            &mut cancelled,
        )
        .await;
        let stderr = collector.await.expect("the collector");
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(4));
        assert_eq!(stderr, 256 * 1024);
        masters.close_all().await;
    });
}

#[test]
fn masters_opened_ahead_serve_the_first_sessions_and_close_with_the_rest() {
    let first = SshServer::start("ahead1");
    let second = SshServer::start("ahead2");
    let (first_target, second_target) = (target(&first), target(&second));
    runtime().block_on(async {
        let masters = std::sync::Arc::new(ControlMasters::new().expect("a socket directory"));
        masters.open_ahead(vec![first_target.clone(), second_target.clone()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut opened = Vec::new();
        for name in ["ahead1", "ahead2"] {
            loop {
                if let Some(pid) = masters.master_pid(name).await {
                    opened.push(pid);
                    break;
                }
                assert!(Instant::now() < deadline, "{name}'s master never opened");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Before any session: both connected once; the sessions then use those masters.
        assert_eq!(first.connections(), 1, "{}", first.log());
        assert_eq!(second.connections(), 1, "{}", second.log());
        let script = request("echo $RUNBOOK_HOST");
        let ((one, one_output), (two, two_output)) = tokio::join!(
            run(&masters, &first_target, &script, None),
            run(&masters, &second_target, &script, None),
        );
        assert_eq!(one.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(two.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(
            (one_output.stdout.as_str(), two_output.stdout.as_str()),
            ("ahead1\n", "ahead2\n")
        );
        assert_eq!(masters.master_pid("ahead1").await, Some(opened[0]));
        assert_eq!(masters.master_pid("ahead2").await, Some(opened[1]));
        assert_eq!(first.connections() + second.connections(), 2);
        close_leaving_nothing(&masters).await;
    });
}

#[test]
fn masters_open_ahead_without_agents_too() {
    // Agents off (`RUNBOOK_REMOTE_AGENT=off`, or a host without perl): the masters are still
    // opened ahead, so a host's first session does not wait for its key exchange.
    let server = SshServer::start("ahead3");
    let target = target(&server);
    runtime().block_on(async {
        let masters = std::sync::Arc::new(
            ControlMasters::new()
                .expect("a socket directory")
                .sessions_only(),
        );
        masters.open_ahead(vec![target.clone()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let opened = loop {
            if let Some(pid) = masters.master_pid("ahead3").await {
                break pid;
            }
            assert!(Instant::now() < deadline, "the master never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (result, output) = run(&masters, &target, &request("echo $RUNBOOK_HOST"), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout, "ahead3\n");
        assert_eq!(masters.master_pid("ahead3").await, Some(opened));
        assert_eq!(server.connections(), 1, "{}", server.log());
        masters.close_all().await;
    });
}

#[test]
fn closing_stops_an_opening_ahead_to_a_host_that_never_answers() {
    // Accepts connections (the kernel's backlog) and never says a word: ssh waits for the
    // server's banner until its connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent listener");
    let mut target = SshTarget::new("mute1", "127.0.0.1");
    target.port = Some(silent.local_addr().expect("its address").port());
    target.connect_timeout = Some(Duration::from_secs(600));
    runtime().block_on(async {
        let masters = std::sync::Arc::new(ControlMasters::new().expect("a socket directory"));
        let directory = masters.directory().display().to_string();
        masters.open_ahead(vec![target]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while processes_with(&directory).is_empty() {
            assert!(Instant::now() < deadline, "the opening never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Returns without waiting out the 600 s, and the opening's ssh is gone.
        masters.close_all().await;
        assert_no_process_with(&directory);
        assert_eq!(masters.master_pid("mute1").await, None);
    });
}

#[test]
fn a_host_down_when_opened_ahead_fails_its_session_naming_host_address_and_cause() {
    let mut server = SshServer::start("gone1");
    let target = target(&server);
    server.kill();
    runtime().block_on(async {
        let masters = std::sync::Arc::new(ControlMasters::new().expect("a socket directory"));
        masters.open_ahead(vec![target.clone()]);
        let (result, _) = run(&masters, &target, &request("true"), None).await;
        let error = result.expect_err("the host is down");
        assert!(
            error
                .to_string()
                .contains("could not connect to gone1 (127.0.0.1:"),
            "{error}"
        );
        assert!(error.to_string().ends_with("connection refused"), "{error}");
        masters.close_all().await;
    });
}

#[test]
fn kill_now_during_a_terminate_cuts_the_grace_short() {
    let server = SshServer::start("web15");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let sleeping = scratch.path().join("sleeping");
    let termed = scratch.path().join("termed");
    let word = marker("cutgrace");
    let script = format!(
        "trap 'touch {termed}' TERM\nsh -c \"trap '' TERM; touch {sleeping}; sleep 100; : {word}\" &\nwhile :; do wait || :; done",
        termed = termed.display(),
        sleeping = sleeping.display()
    );
    let mut request = request(&script);
    request.grace = Duration::from_secs(600);
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    let exit = rt.block_on(async {
        let (mut session, collector) = start_session(&masters, &target, &request).await;
        appears(&sleeping).await;
        // SIGTERM reaches the group, whose script traps it and whose child ignores it.
        tokio::select! {
            result = session.terminate(request.grace) => panic!("ended within the grace: {result:?}"),
            () = appears(&termed) => {}
        }
        assert!(!processes_with(&word).is_empty(), "the group outlives SIGTERM");
        session.kill_now();
        let exit = session.terminate(request.grace).await;
        close_session(session, collector).await;
        exit
    });
    assert_killed_leaving_nothing(exit, &word, &rt, &masters, &server);
}

#[test]
fn a_timeout_stops_the_group_even_when_the_hosts_tmpdir_is_gone() {
    let server = SshServer::start("web16");
    // The wrapper's marks of a stop cannot be written: the signals must go all the same.
    std::fs::remove_dir(server.tmp_dir()).expect("remove the host's TMPDIR");
    let word = marker("notmp");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let script = format!("trap '' TERM\nsh -c 'sleep 100; : {word}' &\necho started\nwait");
        let (result, output) = run(
            &masters,
            &target(&server),
            &request(&script),
            Some(Duration::from_secs(1)),
        )
        .await;
        let outcome = result.expect("a timeout, not a connection failure");
        assert_eq!(outcome.end, RemoteEnd::TimedOut(Duration::from_secs(1)));
        assert_eq!(output.stdout, "started\n");
        assert_no_process_with(&word);
        masters.close_all().await;
    });
}

#[test]
fn a_terminate_right_after_the_start_still_sends_sigterm_first() {
    let server = SshServer::start("web17");
    let word = marker("early");
    let mut request = request(&format!("sh -c 'sleep 100; : {word}' &\nwait"));
    // Were the stop lost (the host's shell still reading its program would take the line),
    // only the SIGKILL after this grace would end the script.
    request.grace = Duration::from_secs(60);
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    let exit = rt.block_on(async {
        let (mut session, collector) = start_session(&masters, &target, &request).await;
        let exit = session.terminate(request.grace).await;
        close_session(session, collector).await;
        exit
    });
    let exit = exit.expect("the wrapper reported the end");
    assert!(exit.stopped && !exit.killed, "SIGTERM ended it: {exit:?}");
    assert_no_process_with(&word);
    rt.block_on(masters.close_all());
    assert_host_tmp_empty(&server);
}

/// Waits (bounded) until `pid` is gone (a zombie counts as gone).
fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        if !running {
            return;
        }
        assert!(Instant::now() < deadline, "{what} ({pid}) is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_steps_on_one_host_share_its_agent_and_keep_their_output_apart() {
    let server = SshServer::start("web14");
    let target = target(&server);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let mut running = Vec::new();
        for step in 0..8 {
            let mut request = request(
                "for i in 1 2 3 4 5; do echo \"$STEP out $i\"; echo \"$STEP err $i\" >&2; sleep 0.02; done\n\
                 echo \"step=$STEP\" >> \"$RUNBOOK_OUTPUT\"\necho \"$PPID\"\nexit $STEP",
            );
            request.env.push(("STEP".into(), step.to_string()));
            running.push(start_session(&masters, &target, &request).await);
        }
        let mut agents = Vec::new();
        for (step, (mut session, collector)) in running.into_iter().enumerate() {
            assert!(session.on_agent(), "step {step} did not run on the agent");
            let exit = session.wait().await.expect("the step ran");
            drop(session);
            let output = collector.await.expect("the output collector");
            assert_eq!(exit.code, i32::try_from(step).expect("a small number"));
            assert_eq!(String::from_utf8_lossy(&exit.output), format!("step={step}\n"));
            let mut lines: Vec<&str> = output.stdout.lines().collect();
            agents.push(lines.pop().expect("the parent's pid").to_string());
            let expected: Vec<String> = (1..=5).map(|i| format!("{step} out {i}")).collect();
            assert_eq!(lines, expected, "step {step}");
            let expected: String = (1..=5).map(|i| format!("{step} err {i}\n")).collect();
            assert_eq!(output.stderr, expected, "step {step}");
        }
        agents.dedup();
        assert_eq!(agents.len(), 1, "one agent ran every step: {agents:?}");
        assert_eq!(server.connections(), 1, "{}", server.log());
        masters.close_all().await;
    });
    assert_host_tmp_empty(&server);
}

#[test]
fn a_daemon_holding_stdout_neither_holds_its_step_nor_writes_into_the_next() {
    let server = SshServer::start("web15");
    let target = target(&server);
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let wrote = scratch.path().join("daemon-wrote");
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    // The daemon leaves the step's group (a session of its own) with the step's stdout and
    // writes to it once the next step runs.
    let daemon = request(&format!(
        "setsid sh -c 'while [ ! -e {next} ]; do sleep 0.05; done; echo late-from-the-daemon; echo late >&2; touch {wrote}' &\necho first",
        next = scratch.path().join("next").display(),
        wrote = wrote.display(),
    ));
    let next = request(&format!(
        "touch {}\nwhile [ ! -e {} ]; do sleep 0.05; done\necho second",
        scratch.path().join("next").display(),
        wrote.display(),
    ));
    rt.block_on(async {
        let (first, output) = run(&masters, &target, &daemon, None).await;
        assert_eq!(first.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout, "first\n");
        // The daemon's write fails (its pipe was closed), so it never touches the file:
        // the next step stops waiting by its own timeout.
        let (second, output) = run(&masters, &target, &next, Some(Duration::from_secs(3))).await;
        let second = second.expect("ran");
        assert!(
            matches!(second.end, RemoteEnd::TimedOut(_)),
            "the daemon wrote somewhere: {second:?} {output:?}"
        );
        assert_eq!(output.stdout, "", "{output:?}");
        assert_eq!(output.stderr, "", "{output:?}");
        masters.close_all().await;
    });
    assert!(!wrote.exists());
}

/// Which end of a host's agent a test kills while its step runs.
#[derive(Debug, Clone, Copy)]
enum AgentEnd {
    /// The engine's `ssh` of the agent's session: the connection ends.
    LocalSsh,
    /// The perl agent on the host.
    OnTheHost,
}

/// Runs a step that leaves a marked `sleep 60` in its group, kills `end` of the host's agent
/// once the step runs, and checks that the instance fails as a dropped connection and that
/// nothing of its group is left.
fn kill_the_agent_mid_step(
    rt: &tokio::runtime::Runtime,
    masters: &ControlMasters,
    target: &SshTarget,
    end: AgentEnd,
) {
    let word = marker("agentgone");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let parent = scratch.path().join("parent");
    let script = format!(
        "sh -c 'sleep 60; : {word}' &\necho $PPID > {}.new && mv {0}.new {0}\nwait",
        parent.display()
    );
    let sleeper = request(&script);
    let result = rt.block_on(async {
        let (mut session, collector) = start_session(masters, target, &sleeper).await;
        while !parent.exists() || session.remote_pid().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(session.on_agent());
        let victim = match end {
            AgentEnd::LocalSsh => masters
                .agent_pid(&target.name)
                .await
                .expect("the agent's ssh"),
            AgentEnd::OnTheHost => std::fs::read_to_string(&parent)
                .expect("the agent's pid")
                .trim()
                .parse()
                .expect("a pid"),
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim.cast_signed()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the agent");
        let result = session.wait().await;
        close_session(session, collector).await;
        result
    });
    let error = result.expect_err("the agent ended");
    assert!(
        matches!(error, RemoteError::Dropped { started: true, .. }),
        "{error:?}"
    );
    assert_no_process_with(&word);
}

#[test]
fn the_agents_connection_gone_mid_step_fails_the_instance_and_stops_its_group() {
    let server = SshServer::start("web16");
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    kill_the_agent_mid_step(&rt, &masters, &target, AgentEnd::LocalSsh);
    assert_host_tmp_empty(&server);
    // The next step gets a new agent.
    rt.block_on(async {
        let (result, output) = run(&masters, &target, &request("echo again"), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout, "again\n");
        masters.close_all().await;
    });
}

#[test]
fn a_killed_agent_fails_its_instance_and_leaves_no_process_of_its_group() {
    let server = SshServer::start("web17");
    let rt = runtime();
    let masters = ControlMasters::new().expect("a socket directory");
    let target = target(&server);
    kill_the_agent_mid_step(&rt, &masters, &target, AgentEnd::OnTheHost);
    rt.block_on(masters.close_all());
}

#[test]
fn the_agent_and_its_session_end_with_the_run() {
    let server = SshServer::start("web18");
    let target = target(&server);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let (result, output) = run(&masters, &target, &request("echo $PPID"), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        let agent: u32 = output.stdout.trim().parse().expect("the agent's pid");
        let local = masters.agent_pid("web18").await.expect("the agent's ssh");
        assert!(server.session_processes().contains(&agent));
        masters.close_all().await;
        assert_gone(agent, "the agent");
        assert_gone(local, "the agent's ssh");
        assert_eq!(masters.agent_pid("web18").await, None);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.session_processes().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the host's sessions outlived the run: {:?}",
            server.session_processes()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host whose `PATH` has no perl.
fn host_without_perl(name: &str) -> (SshServer, tempfile::TempDir) {
    let path = common::sshd::path_without_perl();
    let server = SshServer::start_with_env(name, &[("PATH", &path.path().display().to_string())]);
    (server, path)
}

#[test]
fn a_host_without_perl_runs_each_step_in_a_session_of_its_own() {
    let (server, _path) = host_without_perl("web19");
    let target = target(&server);
    let secret = "an0ther-s3cret-that-must-not-leak";
    let watch = secrets::ArgvWatch::start(secret);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let mut request = request(
            "command -v perl || echo no perl\n\
             printf %s \"$TOKEN\" | wc -c >> \"$RUNBOOK_OUTPUT\"\nsleep 1\nexit 4",
        );
        request.env.push(("TOKEN".into(), secret.into()));
        for _ in 0..2 {
            let (mut session, collector) = start_session(&masters, &target, &request).await;
            assert!(!session.on_agent());
            let exit = session.wait().await.expect("the step ran");
            drop(session);
            let output = collector.await.expect("the output collector");
            assert_eq!(exit.code, 4);
            assert_eq!(
                String::from_utf8_lossy(&exit.output).trim(),
                secret.len().to_string()
            );
            assert_eq!(output.stdout, "no perl\n");
        }
        assert_eq!(masters.agent_pid("web19").await, None);
        masters.close_all().await;
    });
    watch.assert_clean();
    assert_host_tmp_empty(&server);
}

#[test]
fn a_step_gets_the_default_sigpipe_though_the_agent_ignores_it() {
    let server = SshServer::start("web20");
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let script =
            "set +o pipefail\nyes | head -n 2 >/dev/null\necho \"yes ended ${PIPESTATUS[0]}\"";
        let (result, output) = run(&masters, &target(&server), &request(script), None).await;
        assert_eq!(result.expect("ran").end, RemoteEnd::Exited(0));
        assert_eq!(output.stdout, format!("yes ended {}\n", 128 + 13));
        assert_eq!(output.stderr, "");
        masters.close_all().await;
    });
}

/// The agent needs only what Debian's Essential `perl-base` holds (a minimal server has no
/// other perl package): its perl here sees no module directory but `perl-base`'s.
#[test]
fn the_agent_runs_on_perl_base_alone() {
    let found = std::process::Command::new("perl")
        .args(["-e", r"print for grep { m{/perl-base$} } @INC"])
        .output()
        .expect("perl runs");
    let base = String::from_utf8_lossy(&found.stdout).trim().to_string();
    if base.is_empty() {
        eprintln!("skipped: this perl has no perl-base directory (not Debian's layout)");
        return;
    }
    let modules = tempfile::tempdir().expect("a module directory");
    std::fs::write(
        modules.path().join("OnlyPerlBase.pm"),
        format!(
            "package OnlyPerlBase;\n@INC = grep {{ $_ eq '{base}' || $_ eq '{}' }} @INC;\n1;\n",
            modules.path().display()
        ),
    )
    .expect("write the module");
    let library = modules.path().display().to_string();
    let server = SshServer::start_with_env(
        "web20",
        &[("PERL5LIB", &library), ("PERL5OPT", "-MOnlyPerlBase")],
    );
    let target = target(&server);
    runtime().block_on(async {
        let masters = ControlMasters::new().expect("a socket directory");
        let request = request("perl -e 'print eval { require Time::HiRes } ? qq(all\\n) : qq(base\\n)'\nsleep 0.3\nexit 3");
        let (mut session, collector) = start_session(&masters, &target, &request).await;
        assert!(session.on_agent(), "the agent did not start on perl-base alone");
        let exit = session.wait().await.expect("the step ran");
        drop(session);
        let output = collector.await.expect("the output collector");
        assert_eq!(exit.code, 3);
        assert_eq!(output.stdout, "base\n", "the step's perl saw more than perl-base");
        masters.close_all().await;
    });
}
