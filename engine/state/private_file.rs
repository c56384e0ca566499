//! Replacing a small file of the state directory whole: written to a new temporary file in
//! the same directory (created 0600, never through a link planted at its name), then renamed
//! over the old one, so a reader sees the old text or the new one, never half a file.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Whether the new file must be on disk before this returns (`fsync` of it and its directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// Derived data a reader can make again: a crash may lose it.
    Cache,
    /// A fact later commands rely on.
    Durable,
}

/// Replaces `target` (a file name in an existing directory) with `bytes`.
pub(super) fn replace_private_file(
    target: &Path,
    bytes: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    let directory = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temporary)?;
        // The mode given at creation is narrowed by the umask, never widened: set it anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        if durability == Durability::Durable {
            file.sync_all()?;
        }
        std::fs::rename(&temporary, target)?;
        if durability == Durability::Durable {
            std::fs::File::open(directory)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_at_the_target_is_replaced_not_written_through() {
        let directory = tempfile::tempdir().expect("test setup");
        let victim = directory.path().join("victim");
        std::fs::write(&victim, "original").expect("test setup");
        let target = directory.path().join("file");
        std::os::unix::fs::symlink(&victim, &target).expect("test setup");
        replace_private_file(&target, b"new", Durability::Durable).expect("replaced");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "original"
        );
        assert_eq!(std::fs::read_to_string(&target).expect("file"), "new");
        let mode = std::fs::metadata(&target)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
