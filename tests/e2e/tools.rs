//! The programs the end-to-end tests need, found or reported: a missing one fails the test
//! with what to install (nothing is skipped silently). Also free ports and checked commands.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `program` from PATH; fails the test naming the Debian package to install when absent.
pub fn require(program: &str, package: &str) -> PathBuf {
    find_on_path(program).unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed, and the end-to-end tests need it: install it with \
             `apt-get install {package}` (scripts/test does this when it is missing)"
        )
    })
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|candidate| candidate.is_file())
}

/// Every program the runbooks and the tests call, checked once per test.
pub fn require_all() {
    for (program, package) in [
        ("psql", "postgresql-client"),
        ("pg_dump", "postgresql-client"),
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("git", "git"),
        ("python3", "python3"),
        ("curl", "curl"),
        ("gzip", "gzip"),
        ("ps", "procps"),
        ("setsid", "util-linux"),
    ] {
        require(program, package);
    }
}

/// The directory of the PostgreSQL server programs (`initdb`, `pg_ctl`): Debian keeps them
/// in /usr/lib/postgresql/<version>/bin, off PATH.
pub fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(initdb) = find_on_path("initdb") {
        return initdb.parent().expect("a directory").to_path_buf();
    }
    panic!(
        "the PostgreSQL server (`initdb`, `pg_ctl`) is not installed, and the end-to-end tests \
         start a throwaway cluster: install it with `apt-get install postgresql` (scripts/test \
         does this when it is missing)"
    )
}

/// Whether the tests run as root (then PostgreSQL runs as the `postgres` user).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Runs `command`; fails the test with its output unless it exits 0. Returns stdout.
pub fn checked(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    expect_success(command, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn expect_success(command: &Command, output: &Output) {
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `git -C directory args...`, checked.
pub fn git(directory: &Path, args: &[&str]) -> String {
    checked(Command::new("git").arg("-C").arg(directory).args(args))
}
