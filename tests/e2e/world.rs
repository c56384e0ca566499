//! One test's world: PostgreSQL with the service's database, Redis with its cache, a git
//! origin with releases 1.0.0 and 2.0.0, the service's checkout at 1.0.0 with its `.env`, and
//! the service itself running on 127.0.0.1. Runs the repository's runbooks against it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;
use super::postgres::Postgres;
use super::redis::Redis;
use super::secrets::{assert_absent, files_containing};
use super::state::{CodeState, EnvFile, ServiceState, SystemState};
use super::tools::{checked, free_port, git, require_all};
use crate::common::{Output, Running, Test, json_events};

/// The database the service uses.
pub const DATABASE: &str = "app";

/// A hang fails the test; nothing here is about speed.
pub const LIMIT: Duration = Duration::from_secs(120);

pub struct World {
    pub postgres: Postgres,
    pub redis: Redis,
    pub password: String,
    pub service_port: u16,
    pub root: PathBuf,
    pub app: PathBuf,
    pub backups: PathBuf,
    pub state_dir: PathBuf,
    pub incidents: PathBuf,
    faults: PathBuf,
    _directory: tempfile::TempDir,
}

/// A finished invocation of the binary and its JSON events (empty in text mode).
pub struct Invocation {
    pub output: Output,
    pub events: Vec<Value>,
}

impl Invocation {
    pub fn run_id(&self) -> String {
        super::events::run_id(&self.events)
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/service")
        .join(name)
}

pub fn runbook(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks")
        .join(format!("{name}.yaml"))
        .display()
        .to_string()
}

/// A password unique to the test, with characters that need care in URLs and shells.
fn unique_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time after 1970")
        .as_nanos();
    format!("Pw#{:x}%{}&Zq", nanos, std::process::id())
}

impl World {
    pub fn new() -> World {
        require_all();
        let password = unique_password();
        let postgres = Postgres::start(&password);
        postgres.psql_file(DATABASE, &fixture("schema.sql"));
        let redis = Redis::start();
        redis.pipe(
            "SET \"cache:user:1\" \"bin\\x01\\n\\\"quoted\\\" value\"\n\
             HSET cache:user:2 name ada role admin\n\
             RPUSH cache:feed:ada one two three\n\
             SET cache:session:abc token EX 3600\n\
             SET \"cache:name with space\" spaced\n\
             SET other:config keep-me\n",
            true,
        );
        let directory = tempfile::Builder::new()
            .prefix("runbook-e2e")
            .tempdir()
            .expect("a directory for the world");
        let root = directory.path().to_path_buf();
        let world = World {
            postgres,
            redis,
            password,
            service_port: free_port(),
            app: root.join("app"),
            backups: root.join("backups"),
            state_dir: root.join("state"),
            incidents: root.join("incidents.log"),
            faults: root.join("faults"),
            root,
            _directory: directory,
        };
        world.make_repositories();
        world.write_vars_files();
        world.start_service();
        world
    }

    /// `origin` with releases 1.0.0 and 2.0.0 (tags v1.0.0, v2.0.0); `app` cloned from it with
    /// `main` at 1.0.0 and its dependencies installed, `.env` beside it.
    fn make_repositories(&self) {
        let origin = self.root.join("origin");
        std::fs::create_dir_all(origin.join("migrations")).expect("create origin");
        std::fs::create_dir_all(&self.faults).expect("create the faults directory");
        git(&origin, &["init", "--quiet", "--initial-branch=main"]);
        for name in ["app.py", "install.sh"] {
            std::fs::copy(fixture(name), origin.join(name)).expect("copy the service");
        }
        std::fs::copy(fixture("gitignore"), origin.join(".gitignore")).expect("copy .gitignore");
        let commit = |version: &str| {
            std::fs::write(origin.join("VERSION"), format!("{version}\n")).expect("VERSION");
            git(&origin, &["add", "--all"]);
            git(
                &origin,
                &[
                    "-c",
                    "user.name=Release",
                    "-c",
                    "user.email=release@example.com",
                    "commit",
                    "--quiet",
                    "-m",
                    &format!("release {version}"),
                ],
            );
            git(&origin, &["tag", &format!("v{version}")]);
        };
        commit("1.0.0");
        std::fs::copy(
            fixture("migrations/002_add_metadata.sql"),
            origin.join("migrations/002_add_metadata.sql"),
        )
        .expect("copy the migration");
        commit("2.0.0");
        checked(
            Command::new("git")
                .args(["clone", "--quiet"])
                .arg(&origin)
                .arg(&self.app),
        );
        git(&self.app, &["checkout", "--quiet", "-B", "main", "v1.0.0"]);
        git(&self.app, &["config", "user.name", "Deployer"]);
        git(&self.app, &["config", "user.email", "deployer@example.com"]);
        let env_file = self.app.join(".env");
        std::fs::write(
            &env_file,
            format!(
                "# the service's settings\nFAULTS_DIR={}\nQUEUE_STATE_FILE={}\nREDIS_PORT={}\n\
                 CACHE_PREFIX=cache:\nFEATURE_METADATA=off\n",
                self.faults.display(),
                self.root.join("queue.state").display(),
                self.redis.port
            ),
        )
        .expect("write .env");
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o640))
            .expect("chmod .env");
        checked(Command::new("./install.sh").current_dir(&self.app));
        let old_lines: String = (1..=1500)
            .map(|line| format!("2024-01-01T00:00:00Z [1.0.0] an older log line {line}\n"))
            .collect();
        std::fs::write(self.app.join("service.log"), old_lines).expect("seed the log");
    }

    fn write_vars_files(&self) {
        let common = format!(
            "app_dir: {app:?}\nservice_port: \"{port}\"\nhealth_attempts: \"25\"\n\
             health_interval: \"0.2\"\n",
            app = self.app.display().to_string(),
            port = self.service_port,
        );
        let database = format!(
            "backup_root: {backups:?}\ndb_port: \"{port}\"\ndb_name: {DATABASE}\n",
            backups = self.backups.display().to_string(),
            port = self.postgres.port,
        );
        let files = [
            (
                "deploy",
                format!(
                    "{common}{database}release: v2.0.0\nredis_url: {:?}\nwatch_seconds: \"2\"\n\
                     watch_interval: \"0.3\"\n",
                    self.redis.url()
                ),
            ),
            (
                "pre-deploy",
                format!(
                    "app_dir: {:?}\n{database}release: v2.0.0\n",
                    self.app.display().to_string()
                ),
            ),
            (
                "emergency-rollback",
                format!(
                    "{common}stable_tag: v1.0.0\nincident_log: {:?}\nreason: error rate above 5% after 2.0.0\n",
                    self.incidents.display().to_string()
                ),
            ),
        ];
        for (name, text) in files {
            std::fs::write(self.root.join(format!("{name}.vars.yaml")), text).expect("vars file");
        }
    }

    /// Starts the service from the checkout as the runbooks do, and waits until it is healthy.
    pub fn start_service(&self) {
        checked(
            Command::new("bash")
                .arg("-c")
                .arg(
                    "cd \"$1\" || exit 1\n\
                     PORT=\"$2\" setsid python3 app.py >> service.log 2>&1 < /dev/null &\n\
                     echo $! > service.pid",
                )
                .arg("start")
                .arg(&self.app)
                .arg(self.service_port.to_string()),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while http::get(self.service_port, "/health").map(|(status, _)| status) != Some(200) {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes the release `version` misbehave: `name` is `install-fails`, `unhealthy`,
    /// `error-rate` (contents: the rate) or `cache-warm-fails`.
    pub fn fault(&self, name: &str, version: &str, contents: &str) {
        std::fs::write(self.faults.join(format!("{name}-{version}")), contents).expect("fault");
    }

    /// The binary with the database password in its environment (only there).
    pub fn binary(&self) -> Test {
        Test::new().env("DB_PASSWORD", &self.password)
    }

    fn run_args(&self, name: &str, overrides: &[(&str, &str)], json: bool) -> Vec<String> {
        let mut args = vec![
            "run".to_string(),
            runbook(name),
            "--vars-file".to_string(),
            self.root
                .join(format!("{name}.vars.yaml"))
                .display()
                .to_string(),
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
        ];
        if json {
            args.extend(["--log-format".to_string(), "json".to_string()]);
        }
        for (name, value) in overrides {
            args.extend(["--var".to_string(), format!("{name}={value}")]);
        }
        args
    }

    /// `runbook run runbooks/<name>.yaml` with this world's vars and `overrides`, JSON events.
    pub fn run(&self, name: &str, overrides: &[(&str, &str)]) -> Invocation {
        let output = self
            .binary()
            .args(self.run_args(name, overrides, true))
            .run_within(LIMIT);
        finished(output, true)
    }

    /// Starts `runbook run` with JSON events without waiting for it.
    pub fn spawn(&self, name: &str, overrides: &[(&str, &str)]) -> Running {
        self.binary()
            .args(self.run_args(name, overrides, true))
            .spawn()
    }

    /// Another subcommand on this world's state dir: `rollback RUN`, `resume RUN`, `show`...
    pub fn command(&self, args: &[&str], json: bool) -> Invocation {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend([
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
        ]);
        if json {
            all.extend(["--log-format".to_string(), "json".to_string()]);
        }
        finished(self.binary().args(all).run_within(LIMIT), json)
    }

    pub fn snapshot(&self) -> SystemState {
        let head = Command::new("git")
            .arg("-C")
            .arg(&self.app)
            .args(["symbolic-ref", "-q", "--short", "HEAD"])
            .output()
            .expect("git symbolic-ref");
        let refs = git(
            &self.app,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
        .lines()
        .filter(|line| {
            !line.starts_with("refs/tags/pre-deploy-")
                && !line.starts_with("refs/heads/backup/pre-deploy-")
        })
        .map(str::to_string)
        .collect();
        let env_file = self.app.join(".env");
        SystemState {
            database: self.postgres.state(DATABASE),
            code: CodeState {
                head: String::from_utf8_lossy(&head.stdout).trim().to_string(),
                commit: git(&self.app, &["rev-parse", "HEAD"]).trim().to_string(),
                changes: git(&self.app, &["status", "--porcelain"]),
                installed: std::fs::read_to_string(self.app.join(".deps/installed"))
                    .unwrap_or_default(),
                refs,
            },
            cache: self.redis.state(),
            env_file: EnvFile {
                mode: std::fs::metadata(&env_file)
                    .map(|metadata| metadata.permissions().mode() & 0o7777)
                    .unwrap_or(0),
                text: std::fs::read_to_string(&env_file).unwrap_or_default(),
            },
            service: self.service(),
        }
    }

    pub fn service(&self) -> ServiceState {
        let body = |path: &str| http::get(self.service_port, path).map(|(_, body)| body);
        ServiceState {
            version: body("/version"),
            health: http::get(self.service_port, "/health").map(|(status, _)| status),
            queue: body("/queue/state"),
        }
    }

    /// The one backup directory the runs made so far (named by the run's timestamp).
    pub fn backup_dir(&self) -> PathBuf {
        let mut directories: Vec<PathBuf> = std::fs::read_dir(&self.backups)
            .expect("the backup root exists")
            .map(|entry| entry.expect("an entry").path())
            .collect();
        assert_eq!(
            directories.len(),
            1,
            "one backup directory: {directories:?}"
        );
        directories.pop().expect("one")
    }

    /// Fails the test if the password shows in `invocations`' output, in what `show`,
    /// `report` and `history` print for `run`, or in any file of the state dir, the backups
    /// or the service's checkout (its log among them).
    pub fn assert_password_never_leaked(&self, invocations: &[&Invocation], run: &str) {
        let secret = &self.password;
        for invocation in invocations {
            assert_absent(secret, &invocation.output.stdout, "the binary's stdout");
            assert_absent(secret, &invocation.output.stderr, "the binary's stderr");
        }
        let mut records = vec![
            self.command(&["show", run], false),
            self.command(&["history"], false),
        ];
        for format in ["md", "html", "json"] {
            records.push(self.command(&["report", run, "--format", format], false));
        }
        for record in &records {
            assert_eq!(record.output.code, 0, "{}", record.output.snapshot());
            assert_absent(secret, &record.output.stdout, "show, history or report");
            assert_absent(secret, &record.output.stderr, "show, history or report");
        }
        for directory in [&self.state_dir, &self.backups, &self.app] {
            let leaked = files_containing(directory, secret);
            assert!(leaked.is_empty(), "the password is in {leaked:?}");
        }
        assert!(
            self.state_dir
                .join("runs")
                .join(run)
                .join("journal.jsonl")
                .is_file(),
            "the run's journal is among the files checked"
        );
    }

    /// Puts release `tag` in service by hand (stop, check out, install, start), as if a
    /// deploy had happened before the test.
    pub fn switch_release(&self, tag: &str) {
        let pid = std::fs::read_to_string(self.app.join("service.pid")).expect("the pid file");
        checked(Command::new("kill").arg(pid.trim()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while http::get(self.service_port, "/health").is_some() {
            assert!(Instant::now() < deadline, "the service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        git(&self.app, &["checkout", "--quiet", "--detach", tag]);
        checked(Command::new("./install.sh").current_dir(&self.app));
        self.start_service();
    }

    /// The service log's lines.
    pub fn service_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.app.join("service.log"))
            .expect("the service log")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn finished(output: Output, json: bool) -> Invocation {
    assert!(
        !output.stderr.contains("panicked"),
        "the binary panicked:\n{}",
        output.snapshot()
    );
    let events = if json {
        json_events(&output.stdout)
    } else {
        Vec::new()
    };
    Invocation { output, events }
}

impl Drop for World {
    fn drop(&mut self) {
        // Whatever the runs left running: the service named by the pid file.
        if let Ok(pid) = std::fs::read_to_string(self.app.join("service.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
