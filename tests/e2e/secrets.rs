//! Where a secret must never appear: any process's argv (watched while runs go on), the
//! binary's output, and every file a run leaves (journal, logs, reports, backups).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Scans /proc/*/cmdline every few milliseconds for a secret until finished.
pub struct ArgvWatch {
    stop: Arc<AtomicBool>,
    scanner: JoinHandle<(Vec<String>, u64)>,
}

impl ArgvWatch {
    pub fn start(secret: &str) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let needle = secret.as_bytes().to_vec();
        let flag = stop.clone();
        let scanner = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !flag.load(Ordering::Relaxed) {
                scans += 1;
                for (pid, argv) in command_lines() {
                    if contains(&argv, &needle) && seen.len() < 20 {
                        let shown = String::from_utf8_lossy(&argv)
                            .replace('\0', " ")
                            .replace(&String::from_utf8_lossy(&needle).into_owned(), "<SECRET>");
                        seen.push(format!("pid {pid}: {shown}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (seen, scans)
        });
        ArgvWatch { stop, scanner }
    }

    /// Stops watching; fails the test if any process had the secret in its argv.
    pub fn assert_clean(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (seen, scans) = self.scanner.join().expect("the argv scanner");
        assert!(scans > 10, "the argv scanner hardly ran ({scans} scans)");
        assert!(
            seen.is_empty(),
            "the secret was in the argv of:\n{}",
            seen.join("\n")
        );
    }
}

fn command_lines() -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.bytes()
                .all(|byte| byte.is_ascii_digit())
                .then_some(name)
        })
        .filter_map(|pid| {
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, argv))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Fails the test if `text` (named `place`) holds the secret.
pub fn assert_absent(secret: &str, text: &str, place: &str) {
    assert!(
        !text.contains(secret),
        "the secret appears in {place}:\n{}",
        text.replace(secret, "<SECRET>")
    );
}

/// Every file under `directory` whose bytes hold the secret.
pub fn files_containing(directory: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.filter_map(|entry| Some(entry.ok()?.path())));
            }
        } else if metadata.is_file()
            && std::fs::read(&path).is_ok_and(|bytes| contains(&bytes, secret.as_bytes()))
        {
            found.push(path);
        }
    }
    found
}
