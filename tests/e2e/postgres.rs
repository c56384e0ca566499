//! A throwaway PostgreSQL cluster: `initdb` in a temporary directory with password
//! authentication (scram-sha-256), started on 127.0.0.1 and a free port, stopped when
//! dropped. As root the cluster runs as the `postgres` user, since PostgreSQL refuses root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::{checked, free_port, postgres_bin_dir, running_as_root};

/// A running cluster; `password` is the `postgres` role's.
pub struct Postgres {
    directory: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    password: String,
}

/// What a rollback must bring back exactly: the schema, a checksum of every table's rows,
/// sequence positions and the schema's owner, grants and comment.
#[derive(Debug, PartialEq, Eq)]
pub struct DatabaseState {
    pub schema: String,
    pub tables: Vec<String>,
    pub sequences: String,
    pub namespace: String,
}

impl Postgres {
    pub fn start(password: &str) -> Postgres {
        let bin = postgres_bin_dir();
        let directory = tempfile::Builder::new()
            .prefix("runbook-e2e-postgres")
            .tempdir()
            .expect("a directory for the cluster");
        let password_file = directory.path().join("password");
        std::fs::write(&password_file, format!("{password}\n")).expect("write the password file");
        if running_as_root() {
            checked(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(directory.path()),
            );
        }
        let data = directory.path().join("data");
        checked(
            owner_command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", password_file.display())),
        );
        std::fs::remove_file(&password_file).expect("remove the password file");
        let mut last_error = String::new();
        // Another test may take the free port first: try a few.
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                directory.path().display()
            );
            let output = owner_command(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(directory.path().join("server.log"))
                .args(["-w", "-t", "30", "-o", &options, "start"])
                .output()
                .expect("run pg_ctl");
            if output.status.success() {
                let postgres = Postgres {
                    directory,
                    bin,
                    port,
                    password: password.to_string(),
                };
                postgres.psql("postgres", "CREATE DATABASE app");
                return postgres;
            }
            last_error =
                std::fs::read_to_string(directory.path().join("server.log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start:\n{last_error}")
    }

    /// `program` (psql, pg_dump) connected to this cluster; the password goes by environment.
    pub fn client(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", &self.password)
            .env_remove("PGDATABASE")
            .stdin(Stdio::null());
        command
    }

    /// Runs SQL in `database`, unaligned and tuples only; fails the test on an error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        checked(
            self.client("psql")
                .args([
                    "-X",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    database,
                    "-c",
                ])
                .arg(sql),
        )
        .trim()
        .to_string()
    }

    /// Runs the SQL file `path` in `database`.
    pub fn psql_file(&self, database: &str, path: &Path) {
        checked(
            self.client("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-f"])
                .arg(path),
        );
    }

    pub fn state(&self, database: &str) -> DatabaseState {
        let schema = checked(self.client("pg_dump").args([
            "--schema-only",
            "--no-owner",
            "--no-acl",
            "-d",
            database,
        ]))
        .lines()
        // A random key pg_dump writes afresh each time.
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
        let names = self.psql(
            database,
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname = 'public' ORDER BY 1",
        );
        let tables = names
            .lines()
            .map(|table| {
                let rows = self.psql(
                    database,
                    &format!(
                        "SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(t::text, E'\\n' \
                         ORDER BY t::text), '')) FROM {table} AS t"
                    ),
                );
                format!("{table}: {rows}")
            })
            .collect();
        let sequences = self.psql(
            database,
            "SELECT coalesce(string_agg(sequencename || '=' || coalesce(last_value::text, 'unused'), \
             ' ' ORDER BY sequencename), '') FROM pg_sequences",
        );
        let namespace = self.psql(
            database,
            "SELECT pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '') || ' ' || \
             coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace \
             WHERE nspname = 'public'",
        );
        DatabaseState {
            schema,
            tables,
            sequences,
            namespace,
        }
    }

    /// A session that holds a lock on `table` inside an open transaction, as a busy writer
    /// would, until it is terminated or dropped. Its `application_name` is `name`.
    pub fn open_writer(&self, database: &str, table: &str, name: &str) -> Writer {
        let mut child = self
            .client("psql")
            .args(["-X", "-q", "-d", database])
            .env("PGAPPNAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a writer session");
        let mut stdin = child.stdin.take().expect("the writer's stdin");
        writeln!(stdin, "BEGIN; LOCK TABLE {table} IN ROW EXCLUSIVE MODE;").expect("lock");
        stdin.flush().expect("flush");
        let writer = Writer {
            child,
            _stdin: stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.session_exists(database, name) {
            assert!(
                Instant::now() < deadline,
                "the writer session did not connect"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        writer
    }

    /// Whether a session named `name` holds a lock in `database` now.
    pub fn session_exists(&self, database: &str, name: &str) -> bool {
        self.psql(
            database,
            &format!(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
                 WHERE a.application_name = '{name}'"
            ),
        ) != "0"
    }
}

/// The command `program` run as the cluster's owner.
fn owner_command(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        // A directory the `postgres` user may enter.
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir("/");
        command
    } else {
        Command::new(program)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = owner_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.directory.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A connected session holding a lock; killed when dropped.
pub struct Writer {
    child: Child,
    _stdin: std::process::ChildStdin,
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
