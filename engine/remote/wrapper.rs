//! The program that runs an instance on a host without the agent (`agent.rs`: no perl there,
//! or `RUNBOOK_REMOTE_AGENT=off`), in a session of its own. The remote command is always `exec sh -s`;
//! the wrapper below, the script (a quoted here-document) and its environment (single-quoted
//! exports) follow on stdin, so no value of the runbook is ever on a command line of either
//! machine. On the host the wrapper starts the step's shell with `setsid` (its own process
//! group) reading the script from fd 4 and watches its stdin: a line `t` sends SIGTERM to the
//! group (the engine times the grace and follows with `k`), a line `k` SIGKILL at once (a
//! second Ctrl-C skips the grace), and the end of stdin (the connection dropped, or the engine
//! gave up on the session) SIGTERM, the grace, then SIGKILL, timed on the host. It kills what
//! is left of the group when the script exits. It reports the start,
//! the real exit status and the contents of `RUNBOOK_OUTPUT` (a file in `$TMPDIR` named after
//! the nonce, removed after) on stderr, in lines that start with a random nonce
//! (`FrameScanner` takes them out); a normal run starts no program but `setsid` and the shell.

use std::time::Duration;

/// The remote command: a shell reading its program from stdin. Written for any login shell
/// (`sh`, `bash`, `zsh`, `fish`, `csh`), since sshd hands it to the user's.
pub(super) const BOOTSTRAP: &str = "exec sh -s";

/// What to run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRequest {
    /// The step's shell and its options (`["bash", "--noprofile", "--norc", "-eo",
    /// "pipefail"]`); the script follows as a file (`/dev/fd/4`). A trailing `-c`, as local
    /// steps' shells end, is dropped: the script's text never goes on a command line.
    pub shell: Vec<String>,
    pub script: String,
    /// Exported for the script only; secrets travel here.
    pub env: Vec<(String, String)>,
    /// Where the script starts; the login directory when `None`.
    pub cwd: Option<String>,
    /// Between SIGTERM and SIGKILL when the step is stopped (timed by the engine) or its
    /// connection drops (timed on the host).
    pub grace: Duration,
}

impl RemoteRequest {
    /// The request for a command rendered as a local one would run it: `argv` is the shell
    /// and its options followed by the script (`[bash, ..., -c, SCRIPT]`).
    pub fn from_argv(
        argv: &[String],
        env: Vec<(String, String)>,
        cwd: Option<String>,
        grace: Duration,
    ) -> RemoteRequest {
        let (shell, script) = match argv.split_last() {
            Some((script, shell)) => (shell.to_vec(), script.clone()),
            None => (Vec::new(), String::new()),
        };
        RemoteRequest {
            shell,
            script,
            env,
            cwd,
            grace,
        }
    }

    /// The shell program a session sends on stdin for this request on host `host`, with a
    /// fresh nonce: what runs on the host, to read or to time without ssh.
    pub fn program(&self, host: &str) -> Result<String, String> {
        program(self, host, &nonce())
    }
}

/// The shell program sent on stdin for `request` on host `host`, its frames marked with
/// `nonce`; or why it cannot be sent.
pub(super) fn program(request: &RemoteRequest, host: &str, nonce: &str) -> Result<String, String> {
    check(request, host)?;
    // The script goes in a here-document (a shell writes a small one straight into a pipe,
    // with no process to start), which ends at this line: one the script cannot contain.
    let delimiter = format!("RUNBOOK_SCRIPT_END_{nonce}");
    if request.script.contains(&delimiter) {
        return Err("the script contains the wrapper's own delimiter".into());
    }

    let exports: String = request
        .env
        .iter()
        .map(|(name, value)| format!("    export {name}={}\n", quote(value)))
        .collect();
    let shell: Vec<String> = shell_words(&request.shell)
        .iter()
        .map(|word| quote(word))
        .collect();
    let change_directory = match &request.cwd {
        Some(cwd) => format!(
            "  cd {cwd} 2>/dev/null || {{\n    printf '%s fail the working directory %s does not exist\\n' \"$runbook_n\" {cwd} >&2\n    return\n  }}\n",
            cwd = quote(cwd)
        ),
        None => String::new(),
    };
    // Tenths of a second, rounded up: after the end of stdin, the watcher polls the group that
    // often during the grace.
    let grace_tenths = request.grace.as_millis().div_ceil(100);
    Ok(format!(
        r#"runbook_wrapper() {{
  umask 077
  runbook_n={nonce}
  trap '' PIPE
  if ! command -v setsid >/dev/null 2>&1; then
    printf '%s fail the host has no `setsid` command (util-linux or busybox)\n' "$runbook_n" >&2
    return
  fi
  runbook_b="${{TMPDIR:-/tmp}}/runbook.$runbook_n"
{change_directory}  exec 3<&0
  (
    trap - PIPE
    export RUNBOOK_HOST={host} RUNBOOK_OUTPUT="$runbook_b.output"
{exports}    exec setsid {shell} /dev/fd/4 </dev/null 3<&- 4<<'{delimiter}'
{script}{newline}{delimiter}
  ) &
  runbook_p=$!
  (
    # `true >file`, not `: >file`: should the file not be writable, a failed redirection of
    # `:` (a special builtin) would end this shell before it sends the signal.
    runbook_g=
    while IFS= read -r runbook_c; do
      case $runbook_c in
        t)
          if [ -z "$runbook_g" ]; then
            runbook_g=1
            true >"$runbook_b.stopped"
            kill -TERM -"$runbook_p" 2>/dev/null || kill -TERM "$runbook_p" 2>/dev/null
          fi
          ;;
        k)
          true >"$runbook_b.stopped"
          true >"$runbook_b.killed"
          kill -KILL -"$runbook_p" 2>/dev/null || kill -KILL "$runbook_p" 2>/dev/null
          ;;
      esac
    done
    if [ -z "$runbook_g" ]; then
      true >"$runbook_b.stopped"
      kill -TERM -"$runbook_p" 2>/dev/null || kill -TERM "$runbook_p" 2>/dev/null
    fi
    runbook_i=0
    while [ "$runbook_i" -lt {grace_tenths} ] && kill -0 -"$runbook_p" 2>/dev/null; do
      sleep 0.1
      runbook_i=$((runbook_i + 1))
    done
    if kill -0 -"$runbook_p" 2>/dev/null; then
      true >"$runbook_b.killed"
      kill -KILL -"$runbook_p" 2>/dev/null
    fi
  ) <&3 3<&- >/dev/null 2>&1 &
  runbook_w=$!
  exec 3<&-
  printf '%s started %s\n' "$runbook_n" "$runbook_p" >&2
  wait "$runbook_p"
  runbook_s=$?
  kill "$runbook_w" 2>/dev/null
  {{ wait "$runbook_w"; }} 2>/dev/null
  kill -KILL -"$runbook_p" 2>/dev/null
  runbook_t=0
  runbook_k=0
  runbook_o=
  if [ -e "$runbook_b.stopped" ] || [ -e "$runbook_b.killed" ] || [ -e "$runbook_b.output" ]; then
    [ -e "$runbook_b.stopped" ] && runbook_t=1
    [ -e "$runbook_b.killed" ] && runbook_k=1
    if [ -s "$runbook_b.output" ]; then
      runbook_o=$(cat "$runbook_b.output"; printf x)
      runbook_o=${{runbook_o%x}}
    fi
    rm -f "$runbook_b.stopped" "$runbook_b.killed" "$runbook_b.output"
  fi
  printf '%s exit %s %s %s\n%s%s end\n' "$runbook_n" "$runbook_s" "$runbook_t" "$runbook_k" "$runbook_o" "$runbook_n" >&2
}}
runbook_wrapper; exit 0
"#,
        script = request.script,
        newline = if request.script.is_empty() || request.script.ends_with('\n') {
            ""
        } else {
            "\n"
        },
        delimiter = delimiter,
        host = quote(host),
        shell = shell.join(" "),
    ))
}

/// Why `request` cannot be sent to host `host`, whichever way it goes (the wrapper or the
/// host's agent): no shell, an environment name a shell cannot export, a NUL byte.
pub(super) fn check(request: &RemoteRequest, host: &str) -> Result<(), String> {
    if request.shell.is_empty() {
        return Err("the step has no shell to run its script with".into());
    }
    let mut values: Vec<&str> = vec![&request.script, host];
    values.extend(request.shell.iter().map(String::as_str));
    values.extend(request.cwd.as_deref());
    for (name, value) in &request.env {
        if !is_shell_name(name) {
            return Err(format!(
                "`{name}` cannot be an environment variable name on the host (letters, digits and `_`, not starting with a digit)"
            ));
        }
        values.push(value);
    }
    if values.iter().any(|value| value.contains('\0')) {
        return Err("a NUL byte cannot be sent to a shell".into());
    }
    Ok(())
}

/// The shell and its options as the host runs them, the script's file after them: a
/// trailing `-c`, as local steps' shells end, is dropped.
pub(super) fn shell_words(shell: &[String]) -> &[String] {
    match shell.split_last() {
        Some((last, rest)) if last == "-c" && !rest.is_empty() => rest,
        _ => shell,
    }
}

/// `value` as one word for a POSIX shell: single quotes, each `'` written as `'\''`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first == b'_' || first.is_ascii_alphabetic())
        && bytes.all(|byte| byte == b'_' || byte.is_ascii_alphanumeric())
}

/// 32 hex digits from the kernel's random source; frames marked with it cannot be forged by
/// chance, and a script cannot know it in advance.
pub(super) fn nonce() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    let random =
        std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom: the clock and the process id still differ between sessions.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (now ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RemoteRequest {
        RemoteRequest {
            shell: vec!["sh".into(), "-e".into()],
            script: "echo 'it''s'".into(),
            env: vec![("TOKEN".into(), "a'b c$HOME".into())],
            cwd: None,
            grace: Duration::from_millis(250),
        }
    }

    #[test]
    fn quote_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn values_are_quoted_and_the_grace_rounded_up() {
        let program = program(&request(), "web1", "n0nce").expect("a program");
        assert!(
            program.contains(r"export TOKEN='a'\''b c$HOME'"),
            "{program}"
        );
        assert!(program.contains("-lt 3 ]"), "{program}");
        assert!(program.contains("exec setsid 'sh' '-e' /dev/fd/4 </dev/null 3<&- 4<<'RUNBOOK_SCRIPT_END_n0nce'\necho 'it''s'\nRUNBOOK_SCRIPT_END_n0nce\n"), "{program}");
    }

    #[test]
    fn a_trailing_dash_c_is_dropped_for_the_script_file() {
        let mut request = request();
        request.shell = ["bash", "-eo", "pipefail", "-c"].map(String::from).to_vec();
        let program = program(&request, "web1", "n").expect("a program");
        assert!(
            program.contains("exec setsid 'bash' '-eo' 'pipefail' /dev/fd/4 "),
            "{program}"
        );
    }

    #[test]
    fn names_a_shell_cannot_export_are_refused() {
        let mut request = request();
        request.env.push(("NOT-A-NAME".into(), "x".into()));
        let error = program(&request, "web1", "n").expect_err("refused");
        assert!(error.contains("`NOT-A-NAME`"), "{error}");
    }

    #[test]
    fn nonce_is_32_hex_digits() {
        let nonce = nonce();
        assert_eq!(nonce.len(), 32);
        assert!(nonce.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(nonce, super::nonce());
    }
}
