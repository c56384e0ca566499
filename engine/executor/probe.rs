//! Running one verification probe (SPEC §5) with its timing: a single sample, samples every
//! `interval` until one passes (`within`), a watch window in which every sample must pass
//! (`hold`), or both: settle, then watch. A sample runs a command in its own process group,
//! sends an HTTP request, or opens a TCP connection; the outcome says what was expected and
//! what was seen.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use regex::{Regex, RegexBuilder};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::http_client::{self, HttpRequest, MAX_BODY};
use crate::format::{in_message, lowercase_first};
use crate::model::{NumberCheck, ProbeTiming};
use crate::process::{CommandSpec, ExitOutcome, OutputChunk, OutputStream, RunningProcess};

/// At most this much of a command probe's stdout is kept and checked: its end, where the
/// answer of a script usually is.
const MAX_STDOUT: usize = 64 * 1024;

/// The end of stderr kept for the failure message.
const MAX_STDERR: usize = 16 * 1024;

/// Lines of stdout and stderr quoted in a failure message.
const QUOTED_LINES: usize = 5;

/// Characters of each quoted output line, and of an HTTP body, shown in a message.
const QUOTED_LINE_CHARS: usize = 200;
const BODY_SNIPPET_CHARS: usize = 200;

/// How long a command probe that ran out of time gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// A TCP probe waits this long for a connection, or less when `within` ends sooner.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Validation rejects a zero interval; this floor keeps a hand-built request from spinning.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One probe with its templates rendered, ready to run.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub name: String,
    pub kind: RenderedProbeKind,
    pub timing: ProbeTiming,
}

/// What one sample of a probe does.
#[derive(Debug, Clone)]
pub enum RenderedProbeKind {
    Command {
        /// The shell words with the script as the last argument.
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        /// Bounds one sample, not the whole probe.
        timeout: Duration,
        expect: RenderedExpectation,
        /// The host it runs on (a probe of an instance `id@host`); `None`: here.
        on_host: Option<ProbeHost>,
    },
    Http(RenderedHttp),
    Tcp {
        /// `host:port`, with an IPv6 literal in brackets.
        address: String,
    },
}

/// Where a command probe of an instance runs: through the run's control master to its host.
#[derive(Debug, Clone)]
pub struct ProbeHost {
    pub masters: std::sync::Arc<crate::remote::ControlMasters>,
    pub target: crate::remote::SshTarget,
}

/// The expectations of a command probe, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedExpectation {
    pub exit_code: i32,
    pub stdout_contains: Option<String>,
    pub stdout_not_contains: Option<String>,
    /// A regex in multi-line mode, as grep reads it: `^` and `$` also match at line breaks.
    pub stdout_matches: Option<String>,
    pub stdout_number: Option<NumberCheck>,
}

/// An HTTP probe, rendered; the engine sends it itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedHttp {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Any of these passes.
    pub status: Vec<u16>,
    pub body_contains: Option<String>,
    /// A regex in multi-line mode, like `stdout_matches`.
    pub body_matches: Option<String>,
    /// Dotted path into the JSON body and the value it must equal, compared as numbers when
    /// both read as numbers, else as text.
    pub body_json: Vec<(String, String)>,
    pub max_latency: Option<Duration>,
    /// Bounds one request: connecting, sending and reading the response.
    pub timeout: Duration,
    /// Trusted on top of the system's roots; already resolved against the runbook directory.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Follow redirects; otherwise a 3xx is the status seen.
    pub follow_redirects: bool,
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub passed: bool,
    /// Samples started, including one cut short by cancellation.
    pub samples: u32,
    pub duration: Duration,
    /// What was expected and what was seen, e.g. `expected status 200, saw 503 (12 samples over
    /// 2m); body: "..."`. Output is quoted as it was: masking secrets is the reporters' job.
    pub message: String,
}

/// Runs `request` with its timing. Setting `cancel` to true ends it at once as failed with the
/// message `cancelled`; a command sample in flight is killed with its process group.
pub async fn run_probe(request: &ProbeRequest, cancel: &mut watch::Receiver<bool>) -> ProbeOutcome {
    let started = Instant::now();
    let mut samples = 0;
    let decided = tokio::select! {
        // Cancellation first, so a probe cancelled before it starts takes no sample.
        biased;
        () = cancellation(cancel) => None,
        decision = sample_until_decided(request, started, &mut samples) => Some(decision),
    };
    let (passed, message) = decided.unwrap_or_else(|| (false, "cancelled".to_string()));
    ProbeOutcome {
        passed,
        samples,
        duration: started.elapsed(),
        message,
    }
}

/// Resolves once `cancel` is true; never when its sender is gone, since then nobody can cancel.
async fn cancellation(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether the probe passed, and its message.
async fn sample_until_decided(
    request: &ProbeRequest,
    started: Instant,
    samples: &mut u32,
) -> (bool, String) {
    let timing = &request.timing;
    let interval = timing.interval.max(MIN_INTERVAL);
    match (timing.within, timing.hold) {
        (Some(within), Some(hold)) => {
            // Settle, then watch: the sample that passed within `within` opens the window.
            let (passed, message) =
                within_loop(&request.kind, started, within, interval, samples).await;
            if !passed {
                return (false, message);
            }
            let settled = format!(
                "settled after {} over {}, then ",
                sample_count(*samples),
                in_message(started.elapsed())
            );
            let window = Window {
                started: Instant::now(),
                hold,
                interval,
                settled: Some(settled),
            };
            hold_loop(&request.kind, &window, samples).await
        }
        (Some(within), None) => {
            within_loop(&request.kind, started, within, interval, samples).await
        }
        (None, Some(hold)) => {
            let window = Window {
                started,
                hold,
                interval,
                settled: None,
            };
            hold_loop(&request.kind, &window, samples).await
        }
        (None, None) => {
            *samples = 1;
            let observation = sample(&request.kind, None).await;
            (observation.passed, observation.message(""))
        }
    }
}

/// Samples until one passes; fails once the next sample would start after `within`.
async fn within_loop(
    kind: &RenderedProbeKind,
    started: Instant,
    within: Duration,
    interval: Duration,
    samples: &mut u32,
) -> (bool, String) {
    let stopped_at_start = super::stopped_time::stopped_total();
    let mut previous: Option<Observation> = None;
    loop {
        let deadline = paused(started + within, stopped_at_start);
        let sample_started = Instant::now();
        *samples += 1;
        let remaining = deadline.saturating_duration_since(sample_started);
        let observation = sample(kind, Some(remaining)).await;
        let elapsed = in_message(started.elapsed());
        let count = sample_count(*samples);
        if observation.passed {
            return (
                true,
                observation.message(&format!("after {count} over {elapsed}")),
            );
        }
        if observation.cut_short
            && let Some(previous) = previous
        {
            // "timed out after 3ms" would only describe the end of `within`: the sample before
            // is what the target last said.
            let context =
                format!("{count} over {elapsed}, the last cut short by the end of `within`");
            return (false, previous.message(&context));
        }
        let next = sample_started + interval;
        let deadline = paused(started + within, stopped_at_start);
        if observation.fatal || next >= deadline {
            let context = if observation.fatal {
                format!("{count} over {elapsed}, not retried")
            } else {
                format!("{count} over {elapsed}")
            };
            return (false, observation.message(&context));
        }
        previous = Some(observation);
        tokio::time::sleep_until(next).await;
    }
}

/// A `hold` watch window.
struct Window {
    started: Instant,
    hold: Duration,
    interval: Duration,
    /// After `within`: how the probe settled. The passing sample that settled it is the
    /// window's first, so the next one comes an `interval` later.
    settled: Option<String>,
}

/// The first sample must pass, and so must every sample until `hold` has elapsed.
async fn hold_loop(kind: &RenderedProbeKind, window: &Window, samples: &mut u32) -> (bool, String) {
    let started = window.started;
    let stopped_at_start = super::stopped_time::stopped_total();
    let end = || paused(started + window.hold, stopped_at_start);
    let length = in_message(window.hold);
    let prefix = window.settled.clone().unwrap_or_default();
    // Samples in the window so far: the settling sample counts as its first.
    let mut in_window = u32::from(window.settled.is_some());
    let mut sample_started = started;
    if window.settled.is_some() {
        let next = started + window.interval;
        if next > end() {
            tokio::time::sleep_until(end()).await;
            return (
                true,
                format!("passed ({prefix}held on 1 sample over {length})"),
            );
        }
        tokio::time::sleep_until(next).await;
        sample_started = Instant::now();
    }
    loop {
        *samples += 1;
        in_window += 1;
        let observation = sample(kind, None).await;
        if !observation.passed {
            let context = match in_window {
                1 => format!("{prefix}the first sample of the {length} `hold` window"),
                number => format!(
                    "{prefix}sample {number}, {} into the {length} `hold` window",
                    in_message(sample_started - started)
                ),
            };
            return (false, observation.message(&context));
        }
        let next = sample_started + window.interval;
        if next > end() {
            // The window lasts its full length even when the last sample came earlier.
            tokio::time::sleep_until(end()).await;
            let context = format!("{prefix}on all {} over {length}", sample_count(in_window));
            return (true, observation.message(&context));
        }
        tokio::time::sleep_until(next).await;
        sample_started = Instant::now();
    }
}

/// `deadline` moved later by the time the engine spent stopped (SIGSTOP, Ctrl-Z) since
/// `stopped_at_start`: a window measures the probe's time, not the engine's absence.
fn paused(deadline: Instant, stopped_at_start: Duration) -> Instant {
    deadline + super::stopped_time::stopped_total().saturating_sub(stopped_at_start)
}

fn sample_count(samples: u32) -> String {
    match samples {
        1 => "1 sample".to_string(),
        count => format!("{count} samples"),
    }
}

/// What one sample saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observation {
    passed: bool,
    /// Retrying cannot change the result (an unsupported URL, an invalid regex).
    fatal: bool,
    /// The sample ran out of time.
    timed_out: bool,
    /// It ran out of time only because `within` ended, so it says little about the target.
    cut_short: bool,
    /// One line: what was expected and what was seen.
    summary: String,
    /// Appended after the timing context: a body snippet, quoted output, a cause chain.
    details: String,
}

impl Observation {
    fn passed(summary: String) -> Observation {
        Observation {
            passed: true,
            fatal: false,
            timed_out: false,
            cut_short: false,
            summary,
            details: String::new(),
        }
    }

    fn failed(summary: String, details: String) -> Observation {
        Observation {
            passed: false,
            fatal: false,
            timed_out: false,
            cut_short: false,
            summary,
            details,
        }
    }

    fn fatal(summary: String) -> Observation {
        Observation {
            passed: false,
            fatal: true,
            timed_out: false,
            cut_short: false,
            summary,
            details: String::new(),
        }
    }

    fn timed_out(self) -> Observation {
        Observation {
            timed_out: true,
            ..self
        }
    }

    /// `summary (context)details`.
    fn message(&self, context: &str) -> String {
        let mut message = self.summary.clone();
        if !context.is_empty() {
            let _ = write!(message, " ({context})");
        }
        message.push_str(&self.details);
        message
    }
}

/// One sample; `limit` is what is left of `within`, which also bounds the sample.
async fn sample(kind: &RenderedProbeKind, limit: Option<Duration>) -> Observation {
    let own_timeout = match kind {
        RenderedProbeKind::Command { timeout, .. } => *timeout,
        RenderedProbeKind::Http(probe) => probe.timeout,
        RenderedProbeKind::Tcp { .. } => TCP_CONNECT_TIMEOUT,
    };
    let timeout = limit.map_or(own_timeout, |limit| own_timeout.min(limit));
    let mut observation = match kind {
        RenderedProbeKind::Command {
            argv,
            env,
            cwd,
            expect,
            on_host,
            ..
        } => {
            let spec = CommandSpec {
                argv: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
            };
            match on_host {
                Some(host) => remote_command_sample(&spec, host, timeout, expect).await,
                None => command_sample(&spec, timeout, expect).await,
            }
        }
        RenderedProbeKind::Http(probe) => http_sample(probe, timeout).await,
        RenderedProbeKind::Tcp { address } => tcp_sample(address, timeout).await,
    };
    observation.cut_short = observation.timed_out && timeout < own_timeout;
    observation
}

/// A probe command's output as it arrives, kept as the end of each stream.
struct ProbeOutput {
    chunks: mpsc::Receiver<OutputChunk>,
    /// Once closed, `recv` is ready at once for ever: it is left out from then on.
    open: bool,
    stdout: Tail,
    stderr: Tail,
}

impl ProbeOutput {
    fn new(chunks: mpsc::Receiver<OutputChunk>) -> ProbeOutput {
        ProbeOutput {
            chunks,
            open: true,
            stdout: Tail::new(MAX_STDOUT),
            stderr: Tail::new(MAX_STDERR),
        }
    }

    fn keep(&mut self, chunk: OutputChunk) {
        match chunk.stream {
            OutputStream::Stdout => self.stdout.push(&chunk.bytes),
            OutputStream::Stderr => self.stderr.push(&chunk.bytes),
        }
    }

    /// Awaits `future`, keeping output meanwhile: the channel is bounded, so a chatty probe
    /// would block if it were not drained while waiting.
    async fn during<T>(&mut self, future: impl Future<Output = T>) -> T {
        tokio::pin!(future);
        loop {
            tokio::select! {
                chunk = self.chunks.recv(), if self.open => match chunk {
                    Some(chunk) => self.keep(chunk),
                    None => self.open = false,
                },
                value = &mut future => return value,
            }
        }
    }

    /// What is left of the output (until every sender is gone), then both streams' ends.
    async fn rest(mut self) -> (Tail, Tail) {
        while let Some(chunk) = self.chunks.recv().await {
            self.keep(chunk);
        }
        (self.stdout, self.stderr)
    }
}

/// The end of one output stream, bounded.
#[derive(Debug)]
struct Tail {
    bytes: VecDeque<u8>,
    limit: usize,
    truncated: bool,
}

impl Tail {
    fn new(limit: usize) -> Tail {
        Tail {
            bytes: VecDeque::new(),
            limit,
            truncated: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(self.limit);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes.make_contiguous()).into_owned()
    }
}

async fn command_sample(
    spec: &CommandSpec,
    timeout: Duration,
    expect: &RenderedExpectation,
) -> Observation {
    let (output, chunks) = mpsc::channel(16);
    let mut process = match RunningProcess::spawn(spec, output) {
        Ok(process) => process,
        Err(error) => {
            return Observation::failed(
                format!(
                    "expected exit code {}, but the probe did not start: {error}",
                    expect.exit_code
                ),
                cause_lines(&error),
            );
        }
    };
    let mut output = ProbeOutput::new(chunks);
    let deadline = Instant::now() + timeout;
    let exit = output
        .during(async { tokio::time::timeout_at(deadline, process.wait()).await.ok() })
        .await;
    if exit.is_none() {
        output.during(process.terminate(TERMINATE_GRACE)).await;
    }
    let (stdout, stderr) = output.rest().await;
    judge(exit, stdout, stderr, timeout, expect)
}

/// One sample of a command probe on its host: the script and environment on the session's
/// stdin, as an instance's script goes.
async fn remote_command_sample(
    spec: &CommandSpec,
    host: &ProbeHost,
    timeout: Duration,
    expect: &RenderedExpectation,
) -> Observation {
    let request = crate::remote::RemoteRequest::from_argv(
        &spec.argv,
        spec.env.clone(),
        None,
        TERMINATE_GRACE,
    );
    let (output, chunks) = mpsc::channel(16);
    let session =
        crate::remote::RemoteSession::start(&host.masters, &host.target, &request, output);
    let mut session = match session.await {
        Ok(session) => session,
        Err(error) => {
            return Observation::failed(
                format!(
                    "expected exit code {}, but the probe did not run: {error}",
                    expect.exit_code
                ),
                String::new(),
            );
        }
    };
    let mut output = ProbeOutput::new(chunks);
    let deadline = Instant::now() + timeout;
    let result = output
        .during(async { tokio::time::timeout_at(deadline, session.wait()).await.ok() })
        .await;
    if result.is_none() {
        let _ = output.during(session.terminate(TERMINATE_GRACE)).await;
    }
    drop(session);
    let (stdout, stderr) = output.rest().await;
    let exit = match result {
        None => None,
        Some(Ok(exit)) => Some(ExitOutcome::Exited(exit.code)),
        Some(Err(error)) => {
            return Observation::failed(
                format!(
                    "expected exit code {}, but the probe did not finish: {error}",
                    expect.exit_code
                ),
                String::new(),
            );
        }
    };
    judge(exit, stdout, stderr, timeout, expect)
}

/// Whether a command probe's sample passed: its exit (`None`: it timed out) and output
/// against the expectations.
fn judge(
    exit: Option<ExitOutcome>,
    mut stdout: Tail,
    mut stderr: Tail,
    timeout: Duration,
    expect: &RenderedExpectation,
) -> Observation {
    let stdout_text = stdout.text();
    let stdout_quote = quote_output(
        "stdout",
        &stdout_text,
        stdout.truncated.then_some(MAX_STDOUT),
    );
    let stderr_text = stderr.text();
    let stderr_quote = || {
        quote_output(
            "stderr",
            &stderr_text,
            stderr.truncated.then_some(MAX_STDERR),
        )
    };
    let Some(exit) = exit else {
        let summary = format!("timed out after {}", in_message(timeout));
        return Observation::failed(summary, format!("{stdout_quote}{}", stderr_quote()))
            .timed_out();
    };

    let mut failures = Vec::new();
    let exit_code_matches = exit == ExitOutcome::Exited(expect.exit_code);
    if !exit_code_matches {
        failures.push(format!(
            "expected exit code {}, saw {}",
            expect.exit_code,
            describe_exit(exit)
        ));
    }
    if let Some(needle) = &expect.stdout_contains
        && !stdout_text.contains(needle.as_str())
    {
        failures.push(format!("expected stdout to contain `{needle}`"));
    }
    if let Some(needle) = &expect.stdout_not_contains
        && stdout_text.contains(needle.as_str())
    {
        failures.push(format!("expected stdout not to contain `{needle}`"));
    }
    if let Some(pattern) = &expect.stdout_matches {
        match line_regex(pattern) {
            Ok(regex) if regex.is_match(&stdout_text) => {}
            Ok(_) => failures.push(format!("expected stdout to match `{pattern}`")),
            Err(error) => {
                return Observation::fatal(format!(
                    "`stdout_matches` `{pattern}` is not a valid regex: {}",
                    first_line(&error.to_string())
                ));
            }
        }
    }
    if let Some(check) = expect.stdout_number {
        let seen = stdout_text.trim();
        let expected = format!("{} {}", check.comparison.symbol(), check.value);
        match seen.parse::<f64>() {
            Ok(number) if check.comparison.holds(number, check.value) => {}
            Ok(number) => failures.push(format!("expected stdout {expected}, saw {number}")),
            Err(_) => failures.push(format!(
                "expected stdout to be a number {expected}, saw {:?}",
                shorten(seen, QUOTED_LINE_CHARS)
            )),
        }
    }
    if failures.is_empty() {
        let summary = match expect.stdout_number {
            Some(_) => format!(
                "exit code {}, stdout {}",
                expect.exit_code,
                stdout_text.trim()
            ),
            None => format!("exit code {}", expect.exit_code),
        };
        return Observation::passed(summary);
    }
    let mut details = stdout_quote;
    if !exit_code_matches {
        details.push_str(&stderr_quote());
    }
    Observation::failed(failures.join("; "), details)
}

fn describe_exit(exit: ExitOutcome) -> String {
    match exit {
        ExitOutcome::Exited(code) => code.to_string(),
        ExitOutcome::Signaled(signal) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("death by signal {signal} (`{}`)", name.as_str()),
            Err(_) => format!("death by signal {signal}"),
        },
    }
}

/// `\nstdout (last 5 lines):\n    …` with each line shortened, or a note that it was empty;
/// `kept` is the size of the tail when the start of the stream was dropped.
fn quote_output(stream: &str, text: &str, kept: Option<usize>) -> String {
    let truncation = match kept {
        Some(kept) => format!(", of only the last {} KiB kept", kept / 1024),
        None => String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().all(|line| line.trim().is_empty()) {
        return format!("\n{stream}: empty{truncation}");
    }
    let shown = &lines[lines.len().saturating_sub(QUOTED_LINES)..];
    let heading = if shown.len() == lines.len() && kept.is_none() {
        format!("{stream}:")
    } else {
        format!("{stream} (last {} lines{truncation}):", shown.len())
    };
    let mut quote = format!("\n{heading}");
    for line in shown {
        let _ = write!(quote, "\n    {}", shorten(line, QUOTED_LINE_CHARS));
    }
    quote
}

async fn http_sample(probe: &RenderedHttp, timeout: Duration) -> Observation {
    let expected_status = join_alternatives(&probe.status);
    let request = HttpRequest {
        url: &probe.url,
        method: &probe.method,
        headers: &probe.headers,
        body: probe.body.as_deref(),
        timeout,
        ca_file: probe.ca_file.as_deref(),
        insecure: probe.insecure,
        follow_redirects: probe.follow_redirects,
    };
    let response = match http_client::send(request).await {
        Ok(response) => response,
        Err(error) => {
            let help = error
                .help()
                .map(|help| format!("\nhelp: {help}"))
                .unwrap_or_default();
            if error.is_fatal() {
                let mut observation = Observation::fatal(error.to_string());
                observation.details = help;
                return observation;
            }
            let timed_out = matches!(error, http_client::HttpError::TimedOut { .. });
            let observation = Observation::failed(
                format!("expected status {expected_status}, saw no response: {error}"),
                help,
            );
            return if timed_out {
                observation.timed_out()
            } else {
                observation
            };
        }
    };

    let mut failures = Vec::new();
    if !probe.status.contains(&response.status) {
        let redirect = if (300..400).contains(&response.status) {
            response
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("location"))
                .map(|(_, location)| format!(" (a redirect to `{location}`, not followed)"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        failures.push(format!(
            "expected status {expected_status}, saw {}{redirect}",
            response.status
        ));
    }
    let body = String::from_utf8_lossy(&response.body);
    if let Some(needle) = &probe.body_contains
        && !body.contains(needle.as_str())
    {
        failures.push(format!("expected the body to contain `{needle}`"));
    }
    if let Some(pattern) = &probe.body_matches {
        match line_regex(pattern) {
            Ok(regex) if regex.is_match(&body) => {}
            Ok(_) => failures.push(format!("expected the body to match `{pattern}`")),
            Err(error) => {
                return Observation::fatal(format!(
                    "`body_matches` `{pattern}` is not a valid regex: {}",
                    first_line(&error.to_string())
                ));
            }
        }
    }
    if !probe.body_json.is_empty() {
        failures.extend(json_failures(
            &probe.body_json,
            &response.body,
            response.body_truncated,
        ));
    }
    if let Some(max_latency) = probe.max_latency
        && response.latency > max_latency
    {
        failures.push(format!(
            "expected a latency of at most {}, saw {}",
            in_message(max_latency),
            in_message(response.latency)
        ));
    }
    let redirected = match &response.redirected_to {
        Some(url) => format!(" from `{url}`"),
        None => String::new(),
    };
    if failures.is_empty() {
        return Observation::passed(format!(
            "status {}{redirected} in {}",
            response.status,
            in_message(response.latency)
        ));
    }
    let kept = if response.body_truncated {
        format!(
            " (the first {} MiB of a longer body)",
            MAX_BODY / (1024 * 1024)
        )
    } else {
        String::new()
    };
    let details = if body.is_empty() {
        "; body: empty".to_string()
    } else {
        format!("; body{kept}: {:?}", shorten(&body, BODY_SNIPPET_CHARS))
    };
    let mut summary = failures.join("; ");
    summary.push_str(&redirected);
    Observation::failed(summary, details)
}

/// One failure per `body_json` entry that does not hold, or one saying the body is not JSON.
fn json_failures(expected: &[(String, String)], body: &[u8], truncated: bool) -> Vec<String> {
    let describe = |(path, value): &(String, String)| format!("`{path}` = `{value}`");
    let document: serde_json::Value = match serde_json::from_slice(body) {
        Ok(document) => document,
        Err(error) => {
            let entries: Vec<String> = expected.iter().map(describe).collect();
            let reason = if truncated {
                format!(
                    "it is longer than the {} MiB the engine reads",
                    MAX_BODY / (1024 * 1024)
                )
            } else {
                error.to_string()
            };
            return vec![format!(
                "expected a JSON body with {}, but the body is not JSON: {reason}",
                entries.join(", ")
            )];
        }
    };
    expected
        .iter()
        .filter_map(|entry| {
            let (path, value) = entry;
            let seen = match json_at(&document, path) {
                Some(seen) => seen,
                None => {
                    return Some(format!(
                        "expected JSON {}, saw no `{path}` in the body",
                        describe(entry)
                    ));
                }
            };
            (!json_equals(value, seen)).then(|| {
                format!(
                    "expected JSON {}, saw `{}`",
                    describe(entry),
                    shorten(&seen.to_string(), QUOTED_LINE_CHARS)
                )
            })
        })
        .collect()
}

/// The value at a dotted path: object keys, or indexes into arrays (`items.0.name`).
fn json_at<'document>(
    document: &'document serde_json::Value,
    path: &str,
) -> Option<&'document serde_json::Value> {
    path.split('.')
        .try_fold(document, |value, segment| match value {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

/// Numbers compare by value when both sides read as numbers (`1.0` equals `1`); anything else
/// compares as text, a JSON string by its content; an object or array never equals a value.
fn json_equals(expected: &str, seen: &serde_json::Value) -> bool {
    let seen_text = match seen {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        serde_json::Value::Bool(flag) => flag.to_string(),
        serde_json::Value::Null => "null".to_string(),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => return false,
    };
    match (
        expected.trim().parse::<f64>(),
        seen_text.trim().parse::<f64>(),
    ) {
        (Ok(left), Ok(right)) if left.is_finite() && right.is_finite() => left == right,
        _ => expected == seen_text,
    }
}

fn join_alternatives(codes: &[u16]) -> String {
    let texts: Vec<String> = codes.iter().map(u16::to_string).collect();
    match texts.split_last() {
        None => "none".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

async fn tcp_sample(address: &str, timeout: Duration) -> Observation {
    match split_host_port(address) {
        Ok((_, Some(_))) => {}
        Ok((_, None)) => {
            return Observation::fatal(format!(
                "`{address}` is not an address a TCP probe can use: it needs a port, `host:port`"
            ));
        }
        Err(reason) => {
            return Observation::fatal(format!(
                "`{address}` is not an address a TCP probe can use: {reason}"
            ));
        }
    }
    let expected = format!("expected `{address}` to accept a connection");
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_connection)) => Observation::passed(format!("`{address}` accepts connections")),
        Ok(Err(error)) => Observation::failed(
            format!("{expected}, saw: {}", lowercase_first(&error.to_string())),
            String::new(),
        ),
        Err(_) => Observation::failed(
            format!("{expected}, saw no answer within {}", in_message(timeout)),
            String::new(),
        )
        .timed_out(),
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back without brackets.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("`{authority}` has no closing `]`"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{authority}` has text after the `]`")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "`{authority}` looks like an IPv6 address: write it in brackets, `[{authority}]`"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{authority}` has no host"));
    }
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(format!("`{port}` is not a port number")),
        },
        None => None,
    };
    Ok((host.to_string(), port))
}

/// Output is lines, so `^ok$` should find the line `ok` in `ok\n`; `\A` and `\z` still
/// anchor at the ends of the whole text.
fn line_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).multi_line(true).build()
}

/// `\ncaused by: …` for each source of `error`.
fn cause_lines(error: &dyn Error) -> String {
    let mut lines = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(
            lines,
            "\ncaused by: {}",
            lowercase_first(&cause.to_string())
        );
        source = cause.source();
    }
    lines
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
}

/// At most `limit` characters, with `…` when something was cut.
fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::super::http_test_server::{Reply, TestServer, refusing_port, response};
    use super::*;
    use crate::model::Comparison;

    const ONCE: ProbeTiming = ProbeTiming {
        within: None,
        hold: None,
        interval: Duration::from_secs(2),
    };

    fn within(within: Duration, interval: Duration) -> ProbeTiming {
        ProbeTiming {
            within: Some(within),
            hold: None,
            interval,
        }
    }

    fn hold(hold: Duration, interval: Duration) -> ProbeTiming {
        ProbeTiming {
            within: None,
            hold: Some(hold),
            interval,
        }
    }

    fn expect_exit_zero() -> RenderedExpectation {
        RenderedExpectation {
            exit_code: 0,
            stdout_contains: None,
            stdout_not_contains: None,
            stdout_matches: None,
            stdout_number: None,
        }
    }

    fn command(script: &str, expect: RenderedExpectation) -> RenderedProbeKind {
        let mut argv: Vec<String> = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
            .map(String::from)
            .to_vec();
        argv.push(script.to_string());
        RenderedProbeKind::Command {
            argv,
            env: Vec::new(),
            cwd: std::env::temp_dir(),
            timeout: Duration::from_secs(30),
            expect,
            on_host: None,
        }
    }

    fn http_get(url: String) -> RenderedHttp {
        RenderedHttp {
            url,
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            status: vec![200],
            body_contains: None,
            body_matches: None,
            body_json: Vec::new(),
            max_latency: None,
            timeout: Duration::from_secs(10),
            ca_file: None,
            insecure: false,
            follow_redirects: false,
        }
    }

    fn request(kind: RenderedProbeKind, timing: ProbeTiming) -> ProbeRequest {
        ProbeRequest {
            name: "probe".to_string(),
            kind,
            timing,
        }
    }

    /// Runs with a cancel channel whose sender is gone, so nothing cancels.
    async fn run(kind: RenderedProbeKind, timing: ProbeTiming) -> ProbeOutcome {
        let (_, mut cancel) = watch::channel(false);
        run_probe(&request(kind, timing), &mut cancel).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn command_passes_when_every_expectation_holds() {
        let expect = RenderedExpectation {
            exit_code: 3,
            stdout_contains: Some("ready".to_string()),
            stdout_not_contains: Some("error".to_string()),
            stdout_matches: Some(r"^\d+ ready$".to_string()),
            stdout_number: None,
        };
        let outcome = run(command("echo '12 ready'; exit 3", expect), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert_eq!(outcome.samples, 1);
        assert_eq!(outcome.message, "exit code 3");

        let expect = RenderedExpectation {
            stdout_number: NumberCheck::parse("< 5"),
            ..expect_exit_zero()
        };
        let outcome = run(command("echo '  4.5 '", expect), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert_eq!(outcome.message, "exit code 0, stdout 4.5");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wrong_exit_code_quotes_the_last_lines_of_stdout_and_stderr() {
        let script = "for line in 1 2 3 4 5 6 7; do echo out$line; done; echo oops >&2; exit 2";
        let outcome = run(command(script, expect_exit_zero()), ONCE).await;
        assert!(!outcome.passed);
        assert_eq!(
            outcome.message,
            "expected exit code 0, saw 2\nstdout (last 5 lines):\n    out3\n    out4\n    out5\n    \
             out6\n    out7\nstderr:\n    oops"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failed_stdout_checks_are_all_reported() {
        let expect = RenderedExpectation {
            stdout_contains: Some("healthy".to_string()),
            stdout_not_contains: Some("degraded".to_string()),
            stdout_matches: Some("^ok".to_string()),
            ..expect_exit_zero()
        };
        let outcome = run(command("echo degraded", expect), ONCE).await;
        assert!(!outcome.passed);
        assert_eq!(
            outcome.message,
            "expected stdout to contain `healthy`; expected stdout not to contain `degraded`; \
             expected stdout to match `^ok`\nstdout:\n    degraded"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdout_number_compares_and_quotes_what_is_not_a_number() {
        let check = NumberCheck {
            comparison: Comparison::LessOrEqual,
            value: 5.0,
        };
        let expect = RenderedExpectation {
            stdout_number: Some(check),
            ..expect_exit_zero()
        };
        let outcome = run(command("echo 7", expect.clone()), ONCE).await;
        assert_eq!(
            outcome.message,
            "expected stdout <= 5, saw 7\nstdout:\n    7"
        );
        let outcome = run(command("echo 'error rate: n/a'", expect), ONCE).await;
        assert!(!outcome.passed);
        assert_eq!(
            outcome.message,
            "expected stdout to be a number <= 5, saw \"error rate: n/a\"\nstdout:\n    error rate: n/a"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn command_sample_times_out_and_its_group_is_terminated() {
        let mut kind = command("echo started; sleep 100 & wait", expect_exit_zero());
        if let RenderedProbeKind::Command { timeout, .. } = &mut kind {
            *timeout = Duration::from_millis(300);
        }
        let outcome = run(kind, ONCE).await;
        assert!(!outcome.passed);
        assert_eq!(
            outcome.message,
            "timed out after 300ms\nstdout:\n    started\nstderr: empty"
        );
        // SIGTERM ended it: the 2s grace was not needed.
        assert!(outcome.duration < TERMINATE_GRACE, "{:?}", outcome.duration);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn keeps_only_the_end_of_a_long_stdout() {
        let expect = RenderedExpectation {
            stdout_contains: Some("the end".to_string()),
            ..expect_exit_zero()
        };
        let script = "head -c 200000 /dev/zero | tr '\\0' 'x'; echo; echo the end";
        let outcome = run(command(script, expect.clone()), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);

        let outcome = run(command(&format!("{script}; exit 1"), expect), ONCE).await;
        let expected_start = "expected exit code 0, saw 1\nstdout (last 2 lines, of only the last 64 KiB kept):\n    xxx";
        assert!(
            outcome.message.starts_with(expected_start),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.ends_with("…\n    the end\nstderr: empty"),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_command_that_cannot_start_says_why() {
        let mut kind = command("true", expect_exit_zero());
        if let RenderedProbeKind::Command { argv, .. } = &mut kind {
            *argv = vec!["runbook-no-such-program".to_string()];
        }
        let outcome = run(kind, ONCE).await;
        assert!(!outcome.passed);
        assert!(
            outcome.message.starts_with(
                "expected exit code 0, but the probe did not start: cannot start `runbook-no-such-program`\ncaused by: no such file"
            ),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn within_retries_a_command_until_it_passes() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let counter = directory.path().join("count");
        let script = format!(
            r#"echo x >> '{}'; test "$(wc -l < '{}')" -ge 3"#,
            counter.display(),
            counter.display()
        );
        let timing = within(Duration::from_secs(20), Duration::from_millis(1));
        let outcome = run(command(&script, expect_exit_zero()), timing).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert_eq!(outcome.samples, 3);
        assert!(
            outcome
                .message
                .starts_with("exit code 0 (after 3 samples over "),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_invalid_regex_is_not_retried() {
        let expect = RenderedExpectation {
            stdout_matches: Some("(unclosed".to_string()),
            ..expect_exit_zero()
        };
        let timing = within(Duration::from_secs(20), Duration::from_millis(1));
        let outcome = run(command("echo x", expect), timing).await;
        assert!(!outcome.passed);
        assert_eq!(outcome.samples, 1);
        assert!(
            outcome
                .message
                .starts_with("`stdout_matches` `(unclosed` is not a valid regex: "),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.contains("(1 sample over "),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.ends_with(", not retried)"),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_passes_with_status_body_and_latency() {
        let server = TestServer::start(|_, _| response(200, "{\"status\": \"green\"}")).await;
        let probe = RenderedHttp {
            body_contains: Some("green".to_string()),
            body_matches: Some(r#""status":\s*"green""#.to_string()),
            max_latency: Some(Duration::from_secs(10)),
            ..http_get(server.url("/health"))
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert!(
            outcome.message.starts_with("status 200 in "),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_failure_shows_expected_and_seen_with_a_body_snippet() {
        let long_body = format!("maintenance\n{}", "y".repeat(300));
        let server = TestServer::start(move |_, _| response(503, &long_body)).await;
        let probe = RenderedHttp {
            status: vec![200, 204],
            body_contains: Some("green".to_string()),
            ..http_get(server.url("/"))
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert!(!outcome.passed);
        let snippet = format!("maintenance\\n{}…", "y".repeat(188));
        assert_eq!(
            outcome.message,
            format!(
                "expected status 200 or 204, saw 503; expected the body to contain `green`; \
                 body: \"{snippet}\""
            )
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_within_waits_for_the_service_to_come_up() {
        let server = TestServer::start(|index, _| match index {
            0..3 => response(503, "starting"),
            _ => response(200, "up"),
        })
        .await;
        let timing = within(Duration::from_secs(20), Duration::from_millis(1));
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert_eq!(outcome.samples, 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_within_fails_with_the_last_observation_and_the_sample_count() {
        let server = TestServer::start(|_, _| response(503, "down")).await;
        let timing = within(Duration::from_millis(200), Duration::from_millis(1));
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(!outcome.passed);
        assert!(outcome.samples >= 2, "{}", outcome.samples);
        assert!(outcome.duration < Duration::from_secs(5));
        let expected_start = format!(
            "expected status 200, saw 503 ({} samples over ",
            outcome.samples
        );
        assert!(
            outcome.message.starts_with(&expected_start),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.ends_with("); body: \"down\""),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_within_reports_the_last_answer_when_the_end_cuts_a_sample_short() {
        let server = TestServer::start(|index, _| match index {
            0 => response(503, "down"),
            _ => Reply::Never,
        })
        .await;
        let timing = within(Duration::from_millis(100), Duration::from_millis(1));
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(!outcome.passed);
        assert_eq!(outcome.samples, 2);
        assert!(
            outcome
                .message
                .starts_with("expected status 200, saw 503 (2 samples over "),
            "{}",
            outcome.message
        );
        assert!(
            outcome
                .message
                .ends_with(", the last cut short by the end of `within`); body: \"down\""),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_slow_response_fails_max_latency_and_timeout() {
        let mut server = TestServer::start(|index, _| match index {
            0 => Reply::After(Duration::from_millis(60), response_bytes(200, "late")),
            _ => Reply::Never,
        })
        .await;
        let probe = RenderedHttp {
            max_latency: Some(Duration::from_millis(10)),
            ..http_get(server.url("/"))
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert!(!outcome.passed);
        assert!(
            outcome
                .message
                .starts_with("expected a latency of at most 10ms, saw "),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.ends_with("; body: \"late\""),
            "{}",
            outcome.message
        );

        let url = server.url("/");
        let probe = RenderedHttp {
            timeout: Duration::from_millis(30),
            ..http_get(url.clone())
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert_eq!(
            outcome.message,
            format!(
                "expected status 200, saw no response: the request to `{url}` timed out after 30ms"
            )
        );
        server.received(2).await;
    }

    fn response_bytes(status: u16, body: &str) -> Vec<u8> {
        match response(status, body) {
            Reply::Now(bytes) => bytes,
            other => unreachable!("`response` replies at once, not {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unusable_ca_file_is_not_retried() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let ca_file = directory.path().join("ca.pem");
        std::fs::write(&ca_file, "not PEM\n").expect("write");
        let timing = within(Duration::from_secs(60), Duration::from_millis(1));
        let probe = RenderedHttp {
            ca_file: Some(ca_file.clone()),
            ..http_get("https://127.0.0.1:9/health".to_string())
        };
        let outcome = run(RenderedProbeKind::Http(probe), timing).await;
        assert!(!outcome.passed);
        assert_eq!(outcome.samples, 1);
        assert!(
            outcome.message.starts_with(&format!(
                "cannot use `ca_file` `{}`: it holds no PEM certificate",
                ca_file.display()
            )),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_body_json_compares_dotted_paths() {
        let body = r#"{"status": "ready", "checks": {"db": "ok", "queue": "degraded"}, "replicas": 3.0, "items": [{"name": "a"}]}"#;
        let server = TestServer::start(move |_, _| response(200, body)).await;
        let expect = |pairs: &[(&str, &str)]| RenderedHttp {
            body_json: pairs
                .iter()
                .map(|(path, value)| ((*path).to_string(), (*value).to_string()))
                .collect(),
            ..http_get(server.url("/"))
        };
        let passing = expect(&[
            ("status", "ready"),
            ("checks.db", "ok"),
            ("replicas", "3"),
            ("items.0.name", "a"),
        ]);
        let outcome = run(RenderedProbeKind::Http(passing), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);

        let failing = expect(&[
            ("checks.queue", "ok"),
            ("checks.cache", "ok"),
            ("checks", "ok"),
        ]);
        let outcome = run(RenderedProbeKind::Http(failing), ONCE).await;
        assert!(!outcome.passed);
        let expected = "expected JSON `checks.queue` = `ok`, saw `\"degraded\"`; \
             expected JSON `checks.cache` = `ok`, saw no `checks.cache` in the body; \
             expected JSON `checks` = `ok`, saw `{\"db\":\"ok\",\"queue\":\"degraded\"}`; body: ";
        assert!(outcome.message.starts_with(expected), "{}", outcome.message);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_body_json_says_when_the_body_is_not_json() {
        let server = TestServer::start(|_, _| response(200, "<html>ready</html>")).await;
        let probe = RenderedHttp {
            body_json: vec![("status".to_string(), "ready".to_string())],
            ..http_get(server.url("/"))
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert_eq!(
            outcome.message,
            "expected a JSON body with `status` = `ready`, but the body is not JSON: \
             expected value at line 1 column 1; body: \"<html>ready</html>\""
        );
    }

    #[test]
    fn json_values_compare_numbers_by_value_and_the_rest_as_text() {
        use serde_json::json;
        assert!(json_equals("1", &json!(1.0)));
        assert!(json_equals("1.10", &json!(1.1)));
        assert!(json_equals("3", &json!("3")));
        assert!(json_equals("true", &json!(true)));
        assert!(json_equals("null", &json!(null)));
        assert!(!json_equals("ok", &json!("OK")));
        assert!(!json_equals("1", &json!([1])));
        assert!(!json_equals("2", &json!(1)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn redirects_are_followed_only_when_asked() {
        let server = TestServer::start(|_, request| {
            if request.starts_with("GET /old ") {
                Reply::Now(
                    b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n".to_vec(),
                )
            } else {
                response(200, "new home")
            }
        })
        .await;
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/old"))), ONCE).await;
        assert_eq!(
            outcome.message,
            "expected status 200, saw 301 (a redirect to `/new`, not followed); body: empty"
        );
        let probe = RenderedHttp {
            follow_redirects: true,
            body_contains: Some("home".to_string()),
            ..http_get(server.url("/old"))
        };
        let outcome = run(RenderedProbeKind::Http(probe), ONCE).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert!(
            outcome
                .message
                .starts_with(&format!("status 200 from `{}` in ", server.url("/new"))),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn tcp_addresses_split_into_host_and_port() {
        assert_eq!(
            split_host_port("[::1]:9000"),
            Ok(("::1".to_string(), Some(9000)))
        );
        assert_eq!(
            split_host_port("db:5432"),
            Ok(("db".to_string(), Some(5432)))
        );
        assert_eq!(split_host_port("db"), Ok(("db".to_string(), None)));
        for (address, reason) in [
            ("::1:80", "write it in brackets"),
            ("[::1", "no closing `]`"),
            (":80", "has no host"),
            ("db:0", "`0` is not a port number"),
            ("db:http", "`http` is not a port number"),
        ] {
            let error = split_host_port(address).expect_err("invalid");
            assert!(error.contains(reason), "{address}: {error}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hold_passes_when_every_sample_passes() {
        let server = TestServer::start(|_, _| response(200, "ok")).await;
        let window = Duration::from_millis(200);
        let timing = hold(window, Duration::from_millis(5));
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert!(outcome.samples >= 2, "{}", outcome.samples);
        assert!(outcome.duration >= window);
        assert!(
            outcome
                .message
                .ends_with(&format!("(on all {} samples over 200ms)", outcome.samples)),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn within_then_hold_settles_first_and_then_watches() {
        // Down for two samples, up for three, then failing again: it settles on sample 3 and
        // the window catches the failure on sample 6, the fourth of the window.
        let server = TestServer::start(|index, _| match index {
            0..2 => response(503, "starting"),
            2..5 => response(200, "ok"),
            _ => response(500, "broken"),
        })
        .await;
        let timing = ProbeTiming {
            within: Some(Duration::from_secs(60)),
            hold: Some(Duration::from_secs(60)),
            interval: Duration::from_millis(1),
        };
        let outcome = run(
            RenderedProbeKind::Http(http_get(server.url("/"))),
            timing.clone(),
        )
        .await;
        assert!(!outcome.passed);
        assert_eq!(outcome.samples, 6);
        assert!(
            outcome.message.contains("(settled after 3 samples over ")
                && outcome.message.contains(", then sample 4, "),
            "{}",
            outcome.message
        );

        // Never up within `within`: it fails as a wait-until probe does.
        let server = TestServer::start(|_, _| response(503, "starting")).await;
        let timing = ProbeTiming {
            within: Some(Duration::from_millis(100)),
            ..timing
        };
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(!outcome.passed);
        assert!(!outcome.message.contains("hold"), "{}", outcome.message);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn within_then_hold_passes_when_the_window_stays_good() {
        let server = TestServer::start(|index, _| match index {
            0 => response(503, "starting"),
            _ => response(200, "ok"),
        })
        .await;
        let timing = ProbeTiming {
            within: Some(Duration::from_secs(60)),
            hold: Some(Duration::from_millis(100)),
            interval: Duration::from_millis(5),
        };
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert!(outcome.passed, "{}", outcome.message);
        assert!(outcome.samples >= 3, "{}", outcome.samples);
        assert!(
            outcome.message.contains("(settled after 2 samples over ")
                && outcome.message.contains(", then on all "),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hold_fails_on_the_first_bad_sample() {
        let server = TestServer::start(|index, _| match index {
            0..3 => response(200, "error rate 1%"),
            _ => response(200, "error rate 9%"),
        })
        .await;
        let probe = RenderedHttp {
            body_matches: Some("error rate [0-4]%".to_string()),
            ..http_get(server.url("/"))
        };
        let timing = hold(Duration::from_secs(60), Duration::from_millis(1));
        let outcome = run(RenderedProbeKind::Http(probe), timing).await;
        assert!(!outcome.passed);
        assert_eq!(outcome.samples, 4);
        assert!(outcome.duration < Duration::from_secs(30));
        assert!(
            outcome
                .message
                .starts_with("expected the body to match `error rate [0-4]%` (sample 4, "),
            "{}",
            outcome.message
        );
        assert!(
            outcome
                .message
                .ends_with(" into the 1m `hold` window); body: \"error rate 9%\""),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hold_needs_its_first_sample_to_pass() {
        let server = TestServer::start(|_, _| response(500, "")).await;
        let timing = hold(Duration::from_secs(60), Duration::from_millis(1));
        let outcome = run(RenderedProbeKind::Http(http_get(server.url("/"))), timing).await;
        assert_eq!(
            outcome,
            ProbeOutcome {
                passed: false,
                samples: 1,
                duration: outcome.duration,
                message:
                    "expected status 200, saw 500 (the first sample of the 1m `hold` window); \
                          body: empty"
                        .to_string(),
            }
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tcp_open_and_closed_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener
            .local_addr()
            .expect("the bound address")
            .to_string();
        let outcome = run(
            RenderedProbeKind::Tcp {
                address: open.clone(),
            },
            ONCE,
        )
        .await;
        assert!(outcome.passed, "{}", outcome.message);
        assert_eq!(outcome.message, format!("`{open}` accepts connections"));

        let (_socket, closed) = refusing_port();
        let outcome = run(
            RenderedProbeKind::Tcp {
                address: closed.to_string(),
            },
            ONCE,
        )
        .await;
        assert!(!outcome.passed);
        assert!(
            outcome.message.starts_with(&format!(
                "expected `{closed}` to accept a connection, saw: connection refused"
            )),
            "{}",
            outcome.message
        );

        let outcome = run(
            RenderedProbeKind::Tcp {
                address: "127.0.0.1".to_string(),
            },
            within(Duration::from_secs(60), Duration::from_millis(1)),
        )
        .await;
        assert_eq!(outcome.samples, 1);
        assert!(
            outcome
                .message
                .starts_with("`127.0.0.1` is not an address a TCP probe can use: it needs a port"),
            "{}",
            outcome.message
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cancellation_ends_a_within_loop_promptly() {
        let mut server = TestServer::start(|_, _| response(503, "down")).await;
        let timing = within(Duration::from_secs(600), Duration::from_millis(1));
        let request = request(RenderedProbeKind::Http(http_get(server.url("/"))), timing);
        let (cancel, mut cancelled) = watch::channel(false);
        let probe = run_probe(&request, &mut cancelled);
        let canceller = async {
            server.received(3).await;
            cancel.send_replace(true);
        };
        let (outcome, ()) = tokio::join!(probe, canceller);
        assert!(!outcome.passed);
        assert_eq!(outcome.message, "cancelled");
        assert!(outcome.samples >= 3, "{}", outcome.samples);
        assert!(outcome.duration < Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cancellation_kills_a_command_sample_in_flight() {
        let mut server = TestServer::start(|_, _| response(200, "")).await;
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; sleep 100",
            server.address.port()
        );
        let request = request(command(&script, expect_exit_zero()), ONCE);
        let (cancel, mut cancelled) = watch::channel(false);
        let probe = run_probe(&request, &mut cancelled);
        let canceller = async {
            server.received(1).await;
            cancel.send_replace(true);
        };
        let (outcome, ()) = tokio::join!(probe, canceller);
        assert_eq!(
            (outcome.passed, outcome.samples, outcome.message.as_str()),
            (false, 1, "cancelled")
        );
        assert!(outcome.duration < Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_probe_cancelled_before_it_starts_takes_no_sample() {
        let (_cancel, mut cancelled) = watch::channel(true);
        let request = request(command("exit 0", expect_exit_zero()), ONCE);
        let outcome = run_probe(&request, &mut cancelled).await;
        assert_eq!((outcome.passed, outcome.samples), (false, 0));
        assert_eq!(outcome.message, "cancelled");
    }
}
