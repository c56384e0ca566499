//! The engine's cost per remote command: `run_remote` of a trivial script, on the host's agent
//! and in a session of its own (a host without perl), against a bare `ssh -S <master> host
//! true` on the same control master, interleaved, against a real sshd on 127.0.0.1 (started
//! as the tests start it). Run with
//! `cargo bench --bench remote_overhead [-- RUNS]`; prints milliseconds per command. The login
//! shell's rc files are skipped unless `RUNBOOK_BENCH_BASHRC` is set.

#[path = "../tests/common/ports.rs"]
mod ports;

#[path = "../tests/common/sshd.rs"]
#[expect(dead_code, reason = "the bench needs only the server and its key")]
mod sshd;

use std::process::Stdio;
use std::time::{Duration, Instant};

use runbook::remote::{ControlMasters, RemoteEnd, RemoteRequest, SshTarget, run_remote};
use tokio::sync::{mpsc, watch};

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(50);
    // `SHLVL=1` keeps bash (root's login shell here) from sourcing ~/.bashrc for each
    // command, which it does when run by sshd at level 1; otherwise that dominates both sides.
    let quiet_shell = std::env::var_os("RUNBOOK_BENCH_BASHRC").is_none();
    let server = sshd::SshServer::start_with_env(
        "bench1",
        if quiet_shell { &[("SHLVL", "1")] } else { &[] },
    );
    let mut target = SshTarget::new("bench1", "127.0.0.1");
    target.port = Some(server.port);
    target.identity_file = Some(server.client_key.clone());
    target.options = server.client_options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let masters_agent = ControlMasters::new().expect("a socket directory");
        let masters_sessions = ControlMasters::new()
            .expect("a socket directory")
            .sessions_only();
        let request = |shell: &str| RemoteRequest {
            shell: vec![shell.to_string()],
            script: "true".into(),
            env: vec![("SECRET".into(), "value".into())],
            cwd: None,
            grace: Duration::from_secs(1),
        };
        let remote = |masters: &'static str, request: RemoteRequest| {
            let masters = if masters == "agent" {
                &masters_agent
            } else {
                &masters_sessions
            };
            let target = &target;
            async move {
                let (output, mut chunks) = mpsc::channel(16);
                let drain = tokio::spawn(async move { while chunks.recv().await.is_some() {} });
                let (_cancel, mut cancelled) = watch::channel(false);
                let started = Instant::now();
                let outcome = run_remote(masters, target, &request, None, output, &mut cancelled)
                    .await
                    .expect("run_remote");
                let took = started.elapsed();
                let _ = drain.await;
                assert_eq!(outcome.end, RemoteEnd::Exited(0));
                took
            }
        };
        // Opens the master; not measured.
        remote("agent", request("sh")).await;
        remote("sessions", request("sh")).await;
        let socket = masters_agent.socket("bench1").await.expect("a live master");
        let bare = || {
            let socket = socket.clone();
            let port = server.port.to_string();
            async move {
                let started = Instant::now();
                let status = tokio::process::Command::new("ssh")
                    .arg("-S")
                    .arg(&socket)
                    .args(["-o", "ControlMaster=no", "-o", "BatchMode=yes", "-p", &port])
                    .args(["127.0.0.1", "true"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .expect("ssh");
                assert!(status.success());
                started.elapsed()
            }
        };
        let mut bare_times = Vec::with_capacity(runs);
        let mut sh_times = Vec::with_capacity(runs);
        let mut bash_times = Vec::with_capacity(runs);
        let mut session_sh_times = Vec::with_capacity(runs);
        let mut session_bash_times = Vec::with_capacity(runs);
        for _ in 0..runs {
            bare_times.push(bare().await);
            sh_times.push(remote("agent", request("sh")).await);
            bash_times.push(remote("agent", request("bash")).await);
            session_sh_times.push(remote("sessions", request("sh")).await);
            session_bash_times.push(remote("sessions", request("bash")).await);
        }
        masters_agent.close_all().await;
        masters_sessions.close_all().await;

        // The host's side alone, without ssh: the wrapper run by a local `sh -s` (fed as a
        // session feeds it, stdin kept open until the end frame) against `sh -c true`.
        let program = request("sh").program("bench1").expect("a program");
        let mut plain_times = Vec::with_capacity(runs);
        let mut wrapper_times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let status = tokio::process::Command::new("sh")
                .args(["-c", "true"])
                .status()
                .await
                .expect("sh");
            assert!(status.success());
            plain_times.push(started.elapsed());
            wrapper_times.push(run_wrapper_locally(&program).await);
        }
        let plain = summary(&mut plain_times);
        let wrapper = summary(&mut wrapper_times);

        let bare = summary(&mut bare_times);
        let sh = summary(&mut sh_times);
        let bash = summary(&mut bash_times);
        let session_sh = summary(&mut session_sh_times);
        let session_bash = summary(&mut session_bash_times);
        println!(
            "{runs} runs each, interleaved, one control master, sshd on 127.0.0.1 \
             (ms: min / median / mean)"
        );
        for (name, (min, median, mean)) in [
            ("bare `ssh -S <master> host true`", bare),
            ("run_remote on the agent, sh", sh),
            ("run_remote on the agent, bash", bash),
            ("run_remote, own session, sh", session_sh),
            ("run_remote, own session, bash", session_bash),
        ] {
            println!("{name:36} {min:7.2} / {median:7.2} / {mean:7.2}");
        }
        for (name, sh, bash) in [
            ("on the agent", sh, bash),
            ("in a session of its own", session_sh, session_bash),
        ] {
            println!(
                "overhead per command {name}: min sh {:+.2} ms, bash {:+.2} ms; median sh {:+.2} ms, bash {:+.2} ms",
                sh.0 - bare.0,
                bash.0 - bare.0,
                sh.1 - bare.1,
                bash.1 - bare.1
            );
        }
        println!(
            "host side without ssh: `sh -c true` {:.2} / {:.2} / {:.2}, the wrapper running \
             `true` {:.2} / {:.2} / {:.2}: {:+.2} ms (median)",
            plain.0,
            plain.1,
            plain.2,
            wrapper.0,
            wrapper.1,
            wrapper.2,
            wrapper.1 - plain.1
        );
    });
}

/// Runs the wrapper as sshd would (`sh -s`, the program on stdin, stdin left open) until
/// its end frame; returns how long that took.
async fn run_wrapper_locally(program: &str) -> Duration {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(program.as_bytes()).await.expect("write");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains(" end\n") {
        let read = stderr.read(&mut buffer).await.expect("read");
        assert!(read > 0, "the wrapper ended without its end frame");
        seen.extend_from_slice(&buffer[..read]);
    }
    drop(stdin);
    let status = child.wait().await.expect("wait");
    assert!(status.success());
    started.elapsed()
}

/// (min, median, mean) in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let milliseconds = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let median = milliseconds(times[times.len() / 2]);
    let mean = times.iter().copied().map(milliseconds).sum::<f64>() / times.len() as f64;
    (milliseconds(times[0]), median, mean)
}
