//! Reading a file a user names (a runbook, `--vars-file`, a var's `file:`, a CA file, a
//! step's `$RUNBOOK_OUTPUT`) with a bound: only a regular file is read (a FIFO would block
//! forever, `/dev/zero` never ends), and never more than a limit, checked before reading and
//! enforced while reading (the file may grow). A leaf: it imports no other engine module.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum BoundedReadError {
    /// Opening or reading failed.
    Io(io::Error),
    /// Not a regular file: what it is instead (`a FIFO`, `a character device`, ...).
    NotRegular(&'static str),
    /// Larger than `limit` bytes.
    TooLarge { limit: u64 },
}

impl std::fmt::Display for BoundedReadError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundedReadError::Io(error) => write!(formatter, "{error}"),
            BoundedReadError::NotRegular(kind) => {
                write!(formatter, "it is {kind}, not a regular file")
            }
            BoundedReadError::TooLarge { limit } => {
                write!(formatter, "it is larger than the limit of {}", size(*limit))
            }
        }
    }
}

impl std::error::Error for BoundedReadError {}

impl From<BoundedReadError> for io::Error {
    fn from(error: BoundedReadError) -> io::Error {
        match error {
            BoundedReadError::Io(error) => error,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// `1 MiB`, `4 MiB`, `512 KiB`: how limits read in messages.
pub fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    read_with_flags(path, limit, 0)
}

/// The same for a file a step could have replaced (its `$RUNBOOK_OUTPUT`): a symbolic link
/// is refused rather than followed, so a step cannot make the engine record another file.
pub fn read_bounded_no_symlink(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    read_with_flags(path, limit, nix::libc::O_NOFOLLOW).map_err(|error| match error {
        BoundedReadError::Io(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            BoundedReadError::NotRegular("a symbolic link")
        }
        other => other,
    })
}

fn read_with_flags(path: &Path, limit: u64, flags: i32) -> Result<Vec<u8>, BoundedReadError> {
    // Non-blocking, so that opening a FIFO with no writer returns at once (it is then refused).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | flags)
        .open(path)
        .map_err(BoundedReadError::Io)?;
    let metadata = file.metadata().map_err(BoundedReadError::Io)?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(BoundedReadError::NotRegular(what));
    }
    if metadata.len() > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    read_at_most(file, limit)
}

/// The same, as UTF-8 text.
pub fn read_bounded_text(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|error| {
        BoundedReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            error.utf8_error(),
        ))
    })
}

fn read_at_most(file: File, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(512 * 1024), "512 KiB");
        assert_eq!(size(100), "100 bytes");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let zero = read_bounded(Path::new("/dev/zero"), 10).expect_err("a device");
        assert_eq!(
            zero.to_string(),
            "it is a character device, not a regular file"
        );
        let directory = tempfile::tempdir().expect("tempdir");
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let error = read_bounded(&fifo, 10).expect_err("a FIFO");
        assert_eq!(error.to_string(), "it is a FIFO, not a regular file");
        let error = read_bounded(directory.path(), 10).expect_err("a directory");
        assert!(error.to_string().contains("a directory"), "{error}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("f");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read_bounded(&path, 5).expect("at the limit"), b"12345");
        let error = read_bounded(&path, 4).expect_err("over");
        assert_eq!(error.to_string(), "it is larger than the limit of 4 bytes");
    }
}
