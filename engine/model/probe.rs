//! Validated verification probes (SPEC §5).

use std::time::Duration;

use super::{EnvEntry, Template};

/// One probe: what it checks and when.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The name as written (or the probe's place when it has none).
    pub name: String,
    /// The name when it is a template (`name: "error rate below {{vars.max}}%"`), rendered
    /// when the probe runs.
    pub name_template: Option<Template>,
    pub kind: ProbeKind,
    pub timing: ProbeTiming,
    /// Timing values written as templates (`hold: "{{vars.watch_window}}"`), rendered and
    /// parsed when the probe runs; `timing` then holds placeholders for them.
    pub timing_templates: TimingTemplates,
}

/// The timing keys of a probe that are templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimingTemplates {
    pub within: Option<Template>,
    pub hold: Option<Template>,
    pub interval: Option<Template>,
}

/// The three kinds of probe.
#[derive(Debug, Clone)]
pub enum ProbeKind {
    Command {
        run: Template,
        shell: super::Shell,
        env: Vec<EnvEntry>,
        timeout: Duration,
        expect: Expectation,
    },
    Http(HttpProbe),
    Tcp {
        address: Template,
    },
}

/// One attempt, wait-until (`within`) or watch window (`hold`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTiming {
    pub within: Option<Duration>,
    pub hold: Option<Duration>,
    pub interval: Duration,
}

/// Expectations on a command probe's result.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub exit_code: i32,
    pub stdout_contains: Option<Template>,
    pub stdout_not_contains: Option<Template>,
    pub stdout_matches: Option<Template>,
    pub stdout_number: Option<NumberCheck>,
    /// `stdout_number` written as a template (`"< {{vars.max_errors}}"`), parsed at run time.
    pub stdout_number_template: Option<Template>,
}

/// `stdout_number: "< 5"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberCheck {
    pub comparison: Comparison,
    pub value: f64,
}

/// The comparison operators of `stdout_number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
        }
    }

    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Less => left < right,
            Comparison::LessOrEqual => left <= right,
            Comparison::Greater => left > right,
            Comparison::GreaterOrEqual => left >= right,
            Comparison::Equal => left == right,
            Comparison::NotEqual => left != right,
        }
    }
}

impl NumberCheck {
    /// Parses `"< 5"`, `">=1"`, `"== 0"`.
    pub fn parse(text: &str) -> Option<NumberCheck> {
        let text = text.trim();
        let operators = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ];
        let (rest, comparison) = operators.iter().find_map(|(symbol, comparison)| {
            text.strip_prefix(symbol).map(|rest| (rest, *comparison))
        })?;
        let value: f64 = rest.trim().parse().ok()?;
        value
            .is_finite()
            .then_some(NumberCheck { comparison, value })
    }
}

/// An HTTP probe, done by the engine itself.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub url: Template,
    pub method: String,
    pub headers: Vec<EnvEntry>,
    pub body: Option<Template>,
    pub status: Vec<u16>,
    pub body_contains: Option<Template>,
    pub body_matches: Option<Template>,
    /// Dotted path into the JSON body and the value it must equal (a `null` is `"null"`).
    pub body_json: Vec<(String, Template)>,
    pub max_latency: Option<Duration>,
    pub timeout: Duration,
    /// A PEM file trusted on top of the system's roots, relative to the runbook directory.
    pub ca_file: Option<Template>,
    /// Skip certificate verification (`validate` warns).
    pub insecure: bool,
    /// Follow redirects; otherwise a 3xx is the status seen.
    pub follow_redirects: bool,
}

impl Probe {
    /// Every template of the probe.
    pub fn templates(&self) -> Vec<&super::Template> {
        let mut templates = self.kind_templates();
        templates.extend(self.name_template.iter());
        templates
    }

    fn kind_templates(&self) -> Vec<&super::Template> {
        match &self.kind {
            ProbeKind::Command {
                run,
                shell,
                env,
                expect,
                ..
            } => {
                let mut templates = vec![run];
                templates.extend(shell.iter());
                templates.extend(env.iter().map(|entry| &entry.value));
                templates.extend(
                    expect
                        .stdout_contains
                        .iter()
                        .chain(&expect.stdout_not_contains)
                        .chain(&expect.stdout_matches),
                );
                templates
            }
            ProbeKind::Http(http) => {
                let mut templates = vec![&http.url];
                templates.extend(http.headers.iter().map(|entry| &entry.value));
                templates.extend(
                    http.body
                        .iter()
                        .chain(&http.body_contains)
                        .chain(&http.body_matches)
                        .chain(&http.ca_file),
                );
                templates.extend(http.body_json.iter().map(|(_, value)| value));
                templates
            }
            ProbeKind::Tcp { address } => vec![address],
        }
    }
}
