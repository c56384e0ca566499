//! Starting a step's program: `posix_spawn` called directly, with what std's `Command` would
//! rebuild at every spawn prepared once per engine (the inherited environment as C strings, the
//! `/dev/null` for stdin), so a spawn costs the parent little more than the `clone` itself.
//!
//! What the step sees is what std's `Command::spawn` gives it: the same argv (with `$0` as the
//! step wrote it), the same environment in the same order (the engine's, sorted by name, with
//! the step's entries on top, a later duplicate winning, as std's `BTreeMap`; the engine's
//! `environ` as it is when the step adds nothing), its own process group, stdin from
//! `/dev/null`, both outputs into pipes, no blocked signal and SIGPIPE at its default.
//!
//! Only a program `program_path::find` located is started this way (glibc on Linux); anything
//! else (a relative `PATH` entry, no match, another platform) goes through std's `Command`, so
//! its `PATH` search and errors stay std's.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::command::CommandSpec;
use super::program_path;
use super::unix;

/// A started step program: its pid (also its process group id) and the read ends of its
/// output pipes, close-on-exec and non-blocking, ready for the pumps.
#[derive(Debug)]
pub(super) struct Started {
    pub pid: u32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Starts `program` (the first word of `spec.argv`) with `arguments` (the rest). The error is
/// the one the spawn reported, for `SpawnError::from_spawn`.
pub(super) fn start(
    spec: &CommandSpec,
    program: &str,
    arguments: &[String],
) -> io::Result<Started> {
    let step_path = spec
        .env
        .iter()
        .rev()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| std::ffi::OsString::from(value))
        .or_else(|| std::env::var_os("PATH"));
    match program_path::find(program, step_path.as_deref()) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        Some(file) => direct::spawn(&file, program, arguments, spec),
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        Some(file) => {
            use std::os::unix::process::CommandExt as _;

            let mut command = Command::new(file);
            // `$0` stays what the step wrote (`bash: line 1: ...`).
            command.arg0(program);
            with_command(command, arguments, spec)
        }
        None => with_command(Command::new(program), arguments, spec),
    }
}

/// std's `Command`, for a program found by its own `PATH` search.
fn with_command(
    mut command: Command,
    arguments: &[String],
    spec: &CommandSpec,
) -> io::Result<Started> {
    command
        .args(arguments)
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&spec.cwd)
        .stdin(dev_null_stdio())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unix::own_process_group(&mut command);
    let mut child = command.spawn()?;
    let pipes = child
        .stdout
        .take()
        .zip(child.stderr.take())
        // Both were asked for as pipes, so std always returns them.
        .ok_or_else(|| io::Error::other("the output pipes were not created"))
        .and_then(|(stdout, stderr)| {
            let (stdout, stderr) = (OwnedFd::from(stdout), OwnedFd::from(stderr));
            set_nonblocking(&stdout)?;
            set_nonblocking(&stderr)?;
            Ok((stdout, stderr))
        });
    match pipes {
        // Dropping a `Child` neither kills nor reaps it: the pid stays ours to wait for.
        Ok((stdout, stderr)) => Ok(Started {
            pid: child.id(),
            stdout,
            stderr,
        }),
        Err(error) => {
            // Not known to anyone yet: stopped and reaped here, before the error is told.
            let group = nix::unistd::Pid::from_raw(child.id().cast_signed());
            let _ = unix::signal_group(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            Err(error)
        }
    }
}

/// A step's stdin for std's `Command`: a duplicate of the shared `/dev/null`, or a new one.
fn dev_null_stdio() -> Stdio {
    dev_null()
        .and_then(|file| file.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// `/dev/null`, opened once (close-on-exec) and shared by every spawn.
fn dev_null() -> Option<&'static std::fs::File> {
    static DEV_NULL: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| std::fs::File::open("/dev/null").ok())
        .as_ref()
}

/// A pipe's read end as the pumps need it; a new pipe has no other status flag to keep.
fn set_nonblocking(read_end: &OwnedFd) -> io::Result<()> {
    fcntl(read_end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(())
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    // std's own error for the same input.
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

/// The environment a step gets: the engine's (read once) with the step's entries merged in.
mod environment {
    use std::collections::BTreeMap;
    use std::ffi::{CStr, CString, c_char};
    use std::sync::OnceLock;

    use super::c_string;

    /// The engine's own environment, read once: nothing in the engine changes it
    /// (`std::env::set_var` is never called), so every step would see it the same anyway.
    #[derive(Debug)]
    struct Inherited {
        /// `environ` as it is, in its order: what std passes when a step adds nothing.
        entries: Vec<CString>,
        /// Parsed as `std::env::vars_os` parses it, sorted by name, a later duplicate winning:
        /// std's `BTreeMap` of it. Each with the length of its name.
        sorted: Vec<(usize, CString)>,
    }

    fn inherited() -> &'static Inherited {
        static INHERITED: OnceLock<Inherited> = OnceLock::new();
        INHERITED.get_or_init(|| {
            let entries = read_environ();
            let mut by_name: BTreeMap<&[u8], &CString> = BTreeMap::new();
            for entry in &entries {
                let bytes = entry.to_bytes();
                // std's parse: an empty entry or one without `=` after its first byte is
                // skipped; a leading `=` belongs to the name.
                if bytes.is_empty() {
                    continue;
                }
                if let Some(equals) = bytes[1..].iter().position(|&byte| byte == b'=') {
                    by_name.insert(&bytes[..=equals], entry);
                }
            }
            let sorted = by_name
                .into_iter()
                .map(|(name, entry)| (name.len(), entry.clone()))
                .collect();
            Inherited { entries, sorted }
        })
    }

    fn read_environ() -> Vec<CString> {
        let mut entries = Vec::new();
        // SAFETY: `environ` is a null-terminated array of C strings owned by libc. It is read
        // here once, and nothing in this program modifies the environment (no `set_var`,
        // `setenv` or `putenv`), so no other thread can change or free it meanwhile.
        unsafe {
            let mut cursor = nix::libc::environ.cast_const();
            if cursor.is_null() {
                return entries;
            }
            while !(*cursor).is_null() {
                entries.push(CStr::from_ptr(*cursor).to_owned());
                cursor = cursor.add(1);
            }
        }
        entries
    }

    /// The `envp` of one spawn: pointers into the engine's entries and the step's own.
    #[derive(Debug)]
    pub(super) struct StepEnvironment {
        /// The step's entries, `NAME=value`; the pointers below point into them too.
        _own: Vec<CString>,
        pointers: Vec<*const c_char>,
    }

    impl StepEnvironment {
        /// The engine's environment with `added` on top, as std's `Command::envs` builds it.
        pub(super) fn new(added: &[(String, String)]) -> std::io::Result<StepEnvironment> {
            let inherited = inherited();
            if added.is_empty() {
                let mut pointers: Vec<*const c_char> = inherited
                    .entries
                    .iter()
                    .map(|entry| entry.as_ptr())
                    .collect();
                pointers.push(std::ptr::null());
                return Ok(StepEnvironment {
                    _own: Vec::new(),
                    pointers,
                });
            }
            // Later duplicates win, as they do in std's map.
            let mut step: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
            for (name, value) in added {
                step.insert(name.as_bytes(), value.as_bytes());
            }
            let mut own = Vec::with_capacity(step.len());
            for (name, value) in &step {
                let mut entry = Vec::with_capacity(name.len() + value.len() + 1);
                entry.extend_from_slice(name);
                entry.push(b'=');
                entry.extend_from_slice(value);
                own.push((name.len(), c_string(&entry)?));
            }
            let mut pointers = Vec::with_capacity(inherited.sorted.len() + own.len() + 1);
            let mut engine = inherited.sorted.iter().peekable();
            let mut mine = own.iter().peekable();
            loop {
                let next = match (engine.peek(), mine.peek()) {
                    (None, None) => break,
                    (Some(_), None) => engine.next(),
                    (None, Some(_)) => mine.next(),
                    (Some(theirs), Some(ours)) => match name(theirs).cmp(name(ours)) {
                        std::cmp::Ordering::Less => engine.next(),
                        std::cmp::Ordering::Greater => mine.next(),
                        std::cmp::Ordering::Equal => {
                            // The step overrides the engine's value.
                            engine.next();
                            mine.next()
                        }
                    },
                };
                if let Some((_, entry)) = next {
                    pointers.push(entry.as_ptr());
                }
            }
            pointers.push(std::ptr::null());
            Ok(StepEnvironment {
                _own: own.into_iter().map(|(_, entry)| entry).collect(),
                pointers,
            })
        }

        /// The null-terminated `envp`, valid while `self` lives.
        pub(super) fn as_ptr(&self) -> *const *const c_char {
            self.pointers.as_ptr()
        }
    }

    fn name((length, entry): &(usize, CString)) -> &[u8] {
        &entry.to_bytes()[..*length]
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn entries(environment: &StepEnvironment) -> Vec<String> {
            environment
                .pointers
                .iter()
                .take_while(|pointer| !pointer.is_null())
                // SAFETY: every pointer before the null points into a live `CString`.
                .map(|&pointer| {
                    unsafe { CStr::from_ptr(pointer) }
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        }

        #[test]
        fn the_step_entries_are_merged_into_the_sorted_engine_environment() {
            let engine: BTreeMap<String, String> = std::env::vars().collect();
            let (overridden, _) = engine.iter().next().expect("tests run with an environment");
            let added = [
                ("RUNBOOK_SPAWN_TEST_B".to_string(), "first".to_string()),
                ("RUNBOOK_SPAWN_TEST_A".to_string(), "a".to_string()),
                (overridden.clone(), "from the step".to_string()),
                ("RUNBOOK_SPAWN_TEST_B".to_string(), "second".to_string()),
            ];
            let environment = StepEnvironment::new(&added).expect("no nul bytes");
            let mut expected = engine.clone();
            for (name, value) in &added {
                expected.insert(name.clone(), value.clone());
            }
            let expected: Vec<String> = expected
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            assert_eq!(entries(&environment), expected);
        }

        #[test]
        fn a_step_adding_nothing_gets_the_engine_environment_as_it_is() {
            let environment = StepEnvironment::new(&[]).expect("nothing to convert");
            let expected: Vec<String> = std::env::vars()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            assert_eq!(entries(&environment), expected);
        }

        #[test]
        fn a_nul_byte_is_refused_as_std_refuses_it() {
            let error = StepEnvironment::new(&[("NAME".to_string(), "a\0b".to_string())])
                .expect_err("a nul byte cannot be passed");
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        }
    }
}

/// `posix_spawn` itself, with RAII for its attribute and file-action objects.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod direct {
    use std::ffi::{CString, c_char};
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
    use std::path::Path;

    use nix::libc;
    use nix::sys::signal::{SigSet, Signal};

    use super::environment::StepEnvironment;
    use super::{CommandSpec, Started, c_string, dev_null, set_nonblocking};

    /// Starts `file` with `$0` = `arg0`: std's `posix_spawn` path, without its per-spawn
    /// rebuilding of the environment and its descriptor checks.
    pub(super) fn spawn(
        file: &Path,
        arg0: &str,
        arguments: &[String],
        spec: &CommandSpec,
    ) -> io::Result<Started> {
        use std::os::unix::ffi::OsStrExt as _;

        let file = c_string(file.as_os_str().as_bytes())?;
        let cwd = c_string(spec.cwd.as_os_str().as_bytes())?;
        let argv: Vec<CString> = std::iter::once(arg0)
            .chain(arguments.iter().map(String::as_str))
            .map(|argument| c_string(argument.as_bytes()))
            .collect::<io::Result<_>>()?;
        let mut argv_pointers: Vec<*const c_char> =
            argv.iter().map(|argument| argument.as_ptr()).collect();
        argv_pointers.push(std::ptr::null());
        let environment = StepEnvironment::new(&spec.env)?;

        // Opened anew for this spawn only when the shared one could not be opened.
        let own_dev_null;
        let stdin = match dev_null() {
            Some(file) => file.as_raw_fd(),
            None => {
                own_dev_null = std::fs::File::open("/dev/null")?;
                own_dev_null.as_raw_fd()
            }
        };
        let (stdout, stdout_write) = pipe()?;
        let (stderr, stderr_write) = pipe()?;

        let mut actions = FileActions::new()?;
        actions.dup2(stdin, libc::STDIN_FILENO)?;
        actions.dup2(stdout_write.as_raw_fd(), libc::STDOUT_FILENO)?;
        actions.dup2(stderr_write.as_raw_fd(), libc::STDERR_FILENO)?;
        actions.chdir(&cwd)?;
        let mut attributes = Attributes::new()?;
        attributes.configure()?;

        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: `file` and the strings behind the two
        // null-terminated arrays (`argv`, `environment`) live until the end of this function,
        // and both objects were initialised by their `new`. posix_spawn copies what the child
        // needs and keeps no pointer after it returns.
        let error = unsafe {
            libc::posix_spawn(
                &raw mut pid,
                file.as_ptr(),
                actions.as_ptr(),
                attributes.as_ptr(),
                argv_pointers.as_ptr().cast(),
                environment.as_ptr().cast(),
            )
        };
        // The child has its own copies (or was never started).
        drop((stdout_write, stderr_write));
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        Ok(Started {
            pid: pid.cast_unsigned(),
            stdout,
            stderr,
        })
    }

    /// A pipe, both ends close-on-exec (the child gets its end as a `dup2`, which clears the
    /// flag); the read end, returned first, non-blocking.
    fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        set_nonblocking(&read)?;
        Ok((read, write))
    }

    /// posix_spawn's error convention: the error number is the return value.
    fn check(result: libc::c_int) -> io::Result<()> {
        match result {
            0 => Ok(()),
            error => Err(io::Error::from_raw_os_error(error)),
        }
    }

    struct FileActions(MaybeUninit<libc::posix_spawn_file_actions_t>);

    impl FileActions {
        fn new() -> io::Result<FileActions> {
            let mut actions = FileActions(MaybeUninit::uninit());
            // SAFETY: init writes an empty list into the space it is given.
            check(unsafe { libc::posix_spawn_file_actions_init(actions.0.as_mut_ptr()) })?;
            Ok(actions)
        }

        fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
            // SAFETY: the object was initialised in `new`; the call only records the action.
            check(unsafe { libc::posix_spawn_file_actions_adddup2(self.0.as_mut_ptr(), from, to) })
        }

        fn chdir(&mut self, directory: &CString) -> io::Result<()> {
            // SAFETY: the object was initialised in `new`; glibc copies the path.
            check(unsafe {
                libc::posix_spawn_file_actions_addchdir_np(self.0.as_mut_ptr(), directory.as_ptr())
            })
        }

        fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
            self.0.as_ptr()
        }
    }

    impl Drop for FileActions {
        fn drop(&mut self) {
            // SAFETY: initialised in `new` and destroyed only here, once.
            unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
        }
    }

    struct Attributes(MaybeUninit<libc::posix_spawnattr_t>);

    impl Attributes {
        fn new() -> io::Result<Attributes> {
            let mut attributes = Attributes(MaybeUninit::uninit());
            // SAFETY: init writes default attributes into the space it is given.
            check(unsafe { libc::posix_spawnattr_init(attributes.0.as_mut_ptr()) })?;
            Ok(attributes)
        }

        /// What std sets: a new process group (0: named after the child), no blocked signal,
        /// and SIGPIPE, which the Rust runtime ignores in the engine, back at its default.
        fn configure(&mut self) -> io::Result<()> {
            let attributes = self.0.as_mut_ptr();
            let mut default = SigSet::empty();
            default.add(Signal::SIGPIPE);
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF;
            let flags = libc::c_short::try_from(flags).map_err(io::Error::other)?;
            // SAFETY: the object was initialised in `new`; the signal sets are read and copied
            // during each call.
            unsafe {
                check(libc::posix_spawnattr_setpgroup(attributes, 0))?;
                check(libc::posix_spawnattr_setsigmask(
                    attributes,
                    SigSet::empty().as_ref(),
                ))?;
                check(libc::posix_spawnattr_setsigdefault(
                    attributes,
                    default.as_ref(),
                ))?;
                check(libc::posix_spawnattr_setflags(attributes, flags))
            }
        }

        fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
            self.0.as_ptr()
        }
    }

    impl Drop for Attributes {
        fn drop(&mut self) {
            // SAFETY: initialised in `new` and destroyed only here, once.
            unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
        }
    }
}
