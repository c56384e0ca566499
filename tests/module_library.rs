//! The module library of `runbooks/modules/` (README "Modules"): each module validates on its
//! own and its plan shows its compensation; the service module's stop is zombie-aware and
//! kills what ignores SIGTERM, and its release is checked out with the service down and undone
//! with a restart; the git snapshot's undo checks the snapshot out again. The
//! PostgreSQL, Redis and `.env` modules are proven against real services by
//! `tests/e2e_services.rs`, which runs the runbooks built on them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Output, Test, ports::free_port, process_alive, yaml_files::yaml_files};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(120);

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/modules")
}

fn modules() -> Vec<PathBuf> {
    yaml_files(&library())
}

fn module(name: &str) -> String {
    library().join(name).display().to_string()
}

fn engine(test: Test, args: &[&str]) -> Output {
    common::engine::engine_within(test, args, LIMIT)
}

#[test]
fn every_module_validates_on_its_own_and_plans_its_compensation() {
    let files = modules();
    let names: Vec<String> = files
        .iter()
        .filter_map(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "git-snapshot.yaml",
            "pg-backup.yaml",
            "pg-migration.yaml",
            "redis-snapshot.yaml",
            "saved-env.yaml",
            "service.yaml",
        ]
    );
    let paths: Vec<String> = files
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let output = engine(Test::new().args(["validate", "--strict"]).args(&paths), &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        output.stdout.matches("is valid (0 warnings)").count(),
        files.len(),
        "{}",
        output.snapshot()
    );
    for path in &paths {
        // Every required input given, as a caller would.
        let plan = engine(
            Test::new()
                .args(["plan", path, "--format", "json"])
                .args(required_inputs(path)),
            &[],
        );
        assert_eq!(plan.code, 0, "{path}:\n{}", plan.snapshot());
        let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
        let steps = plan["steps"].as_array().expect("steps");
        assert!(!steps.is_empty(), "{path}");
        for step in steps {
            assert!(
                step["rollback"]["command"]
                    .as_str()
                    .is_some_and(|command| !command.trim().is_empty()),
                "{path}: step {} has no compensation",
                step["id"]
            );
        }
        let order = plan["rollback"].to_string();
        for step in steps {
            let id = step["id"].as_str().unwrap_or_default();
            assert!(order.contains(id), "{path}: {id} is not in {order}");
        }
    }
}

/// `--var` arguments for every input `path` requires.
fn required_inputs(path: &str) -> Vec<String> {
    let name = Path::new(path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let values: &[&str] = match name.as_str() {
        "git-snapshot.yaml" => &["repo=/srv/app", "name=before-x"],
        "pg-backup.yaml" => &["db_name=app", "backup_dir=/var/backups", "tables=users"],
        "pg-migration.yaml" => &[
            "db_name=app",
            "migration=/srv/app/m.sql",
            "backup=/var/backups/app.sql.gz",
            "rows=public.users=4",
        ],
        "redis-snapshot.yaml" => &["url=redis://127.0.0.1:6379/0", "keys=cache:*", "dir=/tmp/c"],
        "saved-env.yaml" => &["file=/srv/app/.env", "copy=/var/backups/env"],
        "service.yaml" => &[
            "dir=/srv/app",
            "command=./serve",
            "pid_file=/srv/app/pid",
            "log_file=/srv/app/log",
            "health_url=http://127.0.0.1:3000/health",
            "version_url=http://127.0.0.1:3000/version",
        ],
        other => panic!("no inputs known for {other}"),
    };
    let mut args = Vec::new();
    for value in values {
        args.push("--var".to_string());
        args.push((*value).to_string());
    }
    if name.starts_with("pg-") {
        args.push("--var".to_string());
        args.push("db_password=plan-only".to_string());
    }
    args
}

/// A service for the tests: serves `/health` and `/version` on PORT; with IGNORE_TERM set it
/// ignores SIGTERM.
const SERVER: &str = r#"
import http.server, os, signal
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        version = open("VERSION").read().strip() if os.path.exists("VERSION") else "1.2.3"
        self.wfile.write(version.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

fn service_runbook(port: u16, ignore_term: bool) -> String {
    let command = if ignore_term {
        "env IGNORE_TERM=1 python3 server.py"
    } else {
        "python3 server.py"
    };
    format!(
        r#"
version: 1
name: service-test
steps:
  - id: web
    uses: {module}
    with:
      dir: "{{{{runbook.dir}}}}"
      command: {command}
      port: "{port}"
      pid_file: "{{{{runbook.dir}}}}/web.pid"
      log_file: "{{{{runbook.dir}}}}/web.log"
      health_url: "http://127.0.0.1:{port}/health"
      version_url: "http://127.0.0.1:{port}/version"
      expect_version: 1.2.3
      health_interval: "0.1"
      stop_grace: "1"
  - id: record
    needs: [web]
    readonly: true
    run: cp web.pid started.pid && kill -0 "$(cat web.pid)"
  - id: fail
    needs: [record]
    readonly: true
    run: exit 1
"#,
        module = module("service.yaml"),
    )
}

fn pid_in(directory: &Path, name: &str) -> i32 {
    std::fs::read_to_string(directory.join(name))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn a_started_service_outlives_its_step_and_its_undo_stops_it_even_when_it_ignores_sigterm() {
    let port = free_port();
    let test = Test::new()
        .runbook(&service_runbook(port, true))
        .file("server.py", SERVER);
    let output = engine(test, &["run", "{file}", "--state-dir", "{dir}/state"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let started = pid_in(&output.directory, "started.pid");
    assert!(
        output
            .stdout
            .contains(&format!("pid {started} still runs after 1s: SIGKILL")),
        "{}",
        output.snapshot()
    );
    assert!(
        output
            .stdout
            .contains(&format!("stopped the service (pid {started})")),
        "{}",
        output.snapshot()
    );
    assert!(!process_alive(started), "the service is gone");
    assert!(!output.directory.join("web.pid").exists());
    assert!(
        output.stdout.contains("failed; rolled back (exit 1)"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_pid_file_naming_a_zombie_or_a_reused_pid_counts_as_stopped() {
    // A zombie: a child of this test that exited and was not reaped.
    let mut zombie = Command::new("true").spawn().expect("spawn true");
    let zombie_pid = i32::try_from(zombie.id()).expect("a pid");
    while !std::fs::read_to_string(format!("/proc/{zombie_pid}/stat"))
        .is_ok_and(|stat| stat.contains(") Z "))
    {
        std::thread::yield_now();
    }
    // A reused pid: a live process younger than the pid file naming it.
    let mut unrelated = Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("spawn sleep");
    let unrelated_pid = i32::try_from(unrelated.id()).expect("a pid");

    // The last: a pid file as fresh as the process, whose recorded start time (clock ticks
    // since boot, `web.pid.start`) is not the process's; the age alone would take it for
    // the service.
    for (stale, what) in [
        (zombie_pid, "zombie"),
        (unrelated_pid, "reused"),
        (unrelated_pid, "reused, start time recorded"),
    ] {
        let port = free_port();
        let mut test = Test::new()
            .runbook(&service_runbook(port, false))
            .file("server.py", SERVER)
            .file("web.pid", &format!("{stale}\n"));
        if what == "reused, start time recorded" {
            test = test.file("web.pid.start", "1\n");
        }
        let pid_file = test.path().join("web.pid");
        let touched = Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(&pid_file)
            .status()
            .expect("touch");
        assert!(touched.success());
        if what != "reused" {
            // Its pid file was written when it started, as a start writes it.
            let fresh = Command::new("touch")
                .arg(&pid_file)
                .status()
                .expect("touch");
            assert!(fresh.success());
        }
        let output = engine(test, &["run", "{file}", "--state-dir", "{dir}/state"]);
        assert_eq!(output.code, 1, "{what}: {}", output.snapshot());
        assert!(
            output
                .stdout
                .contains(&format!("stopped the service (pid {stale})")),
            "{what}: {}",
            output.snapshot()
        );
        assert!(
            !output.stdout.contains(&format!("pid {stale} still runs")),
            "{what}: {}",
            output.snapshot()
        );
        let started = pid_in(&output.directory, "started.pid");
        assert_ne!(started, stale);
        assert!(!process_alive(started), "{what}: the service was stopped");
    }
    assert!(
        process_alive(unrelated_pid),
        "the process that reused the pid was left alone"
    );
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    let _ = zombie.wait();
}

#[test]
fn a_release_is_checked_out_while_the_service_is_down_and_its_undo_brings_the_old_one_up() {
    let port = free_port();
    let runbook = format!(
        r#"
version: 1
name: release-test
steps:
  - id: code
    uses: {module}
    with:
      action: release
      dir: "{{{{runbook.dir}}}}/app"
      command: python3 ../server.py
      port: "{port}"
      pid_file: "{{{{runbook.dir}}}}/web.pid"
      log_file: "{{{{runbook.dir}}}}/web.log"
      health_url: "http://127.0.0.1:{port}/health"
      version_url: "http://127.0.0.1:{port}/version"
      health_interval: "0.1"
      ref: v1
      install: "true"
  - id: fail
    needs: [code]
    readonly: true
    run: cp app/VERSION checked-out; exit 1
"#,
        module = module("service.yaml"),
    );
    let test = Test::new().runbook(&runbook).file("server.py", SERVER);
    let app = test.path().join("app");
    commit_versions(&app, true);
    let output = engine(test, &["run", "{file}", "--state-dir", "{dir}/state"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    // With nothing running, the release was checked out and installed.
    assert_eq!(
        std::fs::read_to_string(output.directory.join("checked-out")).expect("checked-out"),
        "1"
    );
    // The undo: back on main at 2, and the service it started serves 2.
    assert_eq!(git(&app, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(
        git(&app, &["rev-parse", "HEAD"]),
        git(&app, &["rev-parse", "v2^{commit}"])
    );
    let started = pid_in(&output.directory, "web.pid");
    assert!(process_alive(started), "{}", output.snapshot());
    let served = Command::new("curl")
        .args(["-fsS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/version"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&served.stdout), "2");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(started),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// A new git repository in `directory` on `main` with two commits, `VERSION` saying 1 then
/// 2; each tagged `v<version>` when `tag`.
fn commit_versions(directory: &Path, tag: bool) {
    std::fs::create_dir_all(directory).expect("the repository's directory");
    git(directory, &["init", "--quiet", "--initial-branch=main"]);
    for version in ["1", "2"] {
        std::fs::write(directory.join("VERSION"), version).expect("VERSION");
        git(directory, &["add", "VERSION"]);
        git(
            directory,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-qm",
                version,
            ],
        );
        if tag {
            git(directory, &["tag", &format!("v{version}")]);
        }
    }
}

fn git(directory: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args(args)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn a_git_snapshots_undo_checks_the_snapshot_out_again_and_keeps_it() {
    let runbook = format!(
        r#"
version: 1
name: snapshot-test
steps:
  - id: snap
    uses: {module}
    with:
      repo: "{{{{runbook.dir}}}}/repo"
      name: "before-{{{{run.timestamp}}}}"
      message: "before the change (run {{{{run.id}}}})"
  - id: change
    needs: [snap]
    readonly: true
    run: git -C repo checkout --quiet --detach HEAD~1
  - id: fail
    needs: [change]
    readonly: true
    run: exit 1
"#,
        module = module("git-snapshot.yaml"),
    );
    let test = Test::new().runbook(&runbook);
    let repo = test.path().join("repo");
    commit_versions(&repo, false);
    let before = git(&repo, &["rev-parse", "HEAD"]);
    let output = engine(test, &["run", "{file}", "--state-dir", "{dir}/state"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("checked out main at the snapshot before-"),
        "{}",
        output.snapshot()
    );
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), before);
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "main");
    let tags = git(&repo, &["tag", "--list", "before-*"]);
    assert_eq!(tags.lines().count(), 1, "the snapshot is kept: {tags}");
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{tags}^{{commit}}")]),
        before
    );
    assert_eq!(
        git(&repo, &["rev-parse", &format!("backup/{tags}")]),
        before
    );
}
