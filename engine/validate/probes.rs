//! Checks of verification probes: exactly one kind, expectations that parse, and timing.

use std::time::Duration;

use super::Diagnostic;
use super::templates::{Scope, TemplateOwner};
use super::validator::Validator;
use crate::document::{OrderedMap, RawExpect, RawHttp, RawProbe, Scalar, Spanned};
use crate::model::{
    Expectation, HttpProbe, NumberCheck, Probe, ProbeKind, ProbeTiming, Template, TimingTemplates,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl Validator<'_> {
    pub(super) fn probes(
        &mut self,
        probes: &[RawProbe],
        place: &str,
        owner: TemplateOwner,
        step_shell: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<Probe> {
        probes
            .iter()
            .enumerate()
            .filter_map(|(index, probe)| {
                self.probe(probe, &format!("{place}[{index}]"), owner, step_shell)
            })
            .collect()
    }

    fn probe(
        &mut self,
        raw: &RawProbe,
        place: &str,
        owner: TemplateOwner,
        step_shell: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<Probe> {
        let name = raw.name.as_ref().map(|name| name.value.clone());
        let label = name.clone().unwrap_or_else(|| place.to_string());
        let position = self.probe_position(raw);
        let kinds = [raw.run.is_some(), raw.http.is_some(), raw.tcp.is_some()]
            .iter()
            .filter(|&&kind| kind)
            .count();
        if kinds != 1 {
            let message = if kinds == 0 {
                format!(
                    "probe `{label}` has no kind: it needs exactly one of `run`, `http` or `tcp`"
                )
            } else {
                format!(
                    "probe `{label}` has more than one kind: it needs exactly one of `run`, `http` or `tcp`"
                )
            };
            self.push(
                Diagnostic::error("probe-kind", message, Some(position))
                    .with_help("split it into one probe per check"),
            );
            return None;
        }
        if raw.expect.is_some() && raw.run.is_none() {
            let message =
                format!("probe `{label}` has `expect`, which applies only to `run` probes");
            self.push(Diagnostic::error(
                "probe-expect",
                message,
                raw.expect.as_ref().map(|expect| expect.position),
            ));
        }
        let (timing, timing_templates) = self.probe_timing(raw, &label, place, owner);
        let kind = if let Some(run) = &raw.run {
            let scope = Scope::new(format!("{place}.run"), owner).shell();
            let run_template = self.script(run, place, &scope);
            let env = match &raw.env {
                Some(env) => self.env_entries(
                    &env.value,
                    &format!("{place}.env"),
                    &Scope::new(place, owner).allow_secrets(),
                ),
                None => Vec::new(),
            };
            ProbeKind::Command {
                run: run_template,
                shell: self.shell(raw.shell.as_ref().or(step_shell), place, owner),
                env,
                timeout: self
                    .duration(raw.timeout.as_ref(), "timeout")
                    .unwrap_or(DEFAULT_PROBE_TIMEOUT),
                expect: self.expectation(raw.expect.as_ref(), place, owner),
            }
        } else if let Some(http) = &raw.http {
            self.reject_run_options(raw, &label, "http");
            ProbeKind::Http(self.http(&http.value, &label, place, owner))
        } else {
            self.reject_run_options(raw, &label, "tcp");
            let tcp = raw.tcp.as_ref()?;
            let address = self.template(tcp, &Scope::new(format!("{place}.tcp"), owner));
            if address.is_literal() && !looks_like_host_port(&address.text) {
                let message = format!(
                    "probe `{label}`: `tcp` must be `host:port`, not `{}`",
                    address.text
                );
                self.push(
                    Diagnostic::error("probe-tcp", message, Some(tcp.position))
                        .with_help("e.g. `tcp: \"127.0.0.1:5432\"`"),
                );
            }
            ProbeKind::Tcp { address }
        };
        let name_template = raw
            .name
            .as_ref()
            .filter(|name| name.value.contains("{{"))
            .map(|name| self.template(name, &Scope::new(format!("{place}.name"), owner)));
        Some(Probe {
            name: label,
            name_template,
            kind,
            timing,
            timing_templates,
        })
    }

    fn probe_position(&self, raw: &RawProbe) -> crate::document::Position {
        let candidates = [
            raw.name.as_ref().map(|name| name.position),
            raw.run.as_ref().map(|run| run.position),
            raw.http.as_ref().map(|http| http.position),
            raw.tcp.as_ref().map(|tcp| tcp.position),
        ];
        candidates
            .into_iter()
            .flatten()
            .min_by_key(|position| (position.line, position.column))
            .unwrap_or_default()
    }

    fn reject_run_options(&mut self, raw: &RawProbe, label: &str, kind: &str) {
        for (key, position) in [
            ("shell", raw.shell.as_ref().map(|shell| shell.position)),
            ("env", raw.env.as_ref().map(|env| env.position)),
            (
                "timeout",
                raw.timeout.as_ref().map(|timeout| timeout.position),
            ),
        ] {
            if let Some(position) = position {
                let message = format!(
                    "probe `{label}` is a `{kind}` probe: `{key}` applies only to `run` probes"
                );
                let help = if key == "timeout" && kind == "http" {
                    Some("put `timeout` inside `http:`".to_string())
                } else {
                    None
                };
                self.push(
                    Diagnostic::error("probe-option", message, Some(position))
                        .with_optional_help(help),
                );
            }
        }
    }

    fn probe_timing(
        &mut self,
        raw: &RawProbe,
        label: &str,
        place: &str,
        owner: TemplateOwner,
    ) -> (ProbeTiming, TimingTemplates) {
        // A templated value is checked as a template now and parsed when the probe runs;
        // a zero placeholder keeps the probe's mode (wait-until or watch window).
        let mut templates = TimingTemplates::default();
        let mut timing_value = |value: Option<&Spanned<String>>,
                                key: &str,
                                slot: &mut Option<Template>|
         -> Option<Duration> {
            let value = value?;
            if value.value.contains("{{") {
                *slot = Some(self.template(value, &Scope::new(format!("{place}.{key}"), owner)));
                return Some(Duration::ZERO);
            }
            self.duration(Some(value), key)
        };
        let within = timing_value(raw.within.as_ref(), "within", &mut templates.within);
        let hold = timing_value(raw.hold.as_ref(), "hold", &mut templates.hold);
        let interval = timing_value(raw.interval.as_ref(), "interval", &mut templates.interval);
        let interval = if templates.interval.is_some() {
            None
        } else {
            interval
        };
        if let (Some(interval_value), None, None) = (&raw.interval, &raw.within, &raw.hold) {
            let message = format!("probe `{label}` has `interval` but neither `within` nor `hold`");
            self.push(
                Diagnostic::warning("probe-interval", message, Some(interval_value.position))
                    .with_help("without `within` or `hold` a probe is tried once"),
            );
        }
        if interval == Some(Duration::ZERO) {
            let message = format!("probe `{label}`: `interval` must be more than zero");
            self.push(Diagnostic::error(
                "probe-timing",
                message,
                raw.interval.as_ref().map(|interval| interval.position),
            ));
        }
        let timing = ProbeTiming {
            within,
            hold,
            interval: interval
                .filter(|interval| !interval.is_zero())
                .unwrap_or(DEFAULT_INTERVAL),
        };
        (timing, templates)
    }

    fn expectation(
        &mut self,
        raw: Option<&Spanned<RawExpect>>,
        place: &str,
        owner: TemplateOwner,
    ) -> Expectation {
        let Some(raw) = raw else {
            return Expectation {
                exit_code: 0,
                stdout_contains: None,
                stdout_not_contains: None,
                stdout_matches: None,
                stdout_number: None,
                stdout_number_template: None,
            };
        };
        let raw = &raw.value;
        let mut text = |value: &Option<Spanned<String>>, key: &str| -> Option<Template> {
            value.as_ref().map(|value| {
                self.template(value, &Scope::new(format!("{place}.expect.{key}"), owner))
            })
        };
        let stdout_contains = text(&raw.stdout_contains, "stdout_contains");
        let stdout_not_contains = text(&raw.stdout_not_contains, "stdout_not_contains");
        let stdout_matches = text(&raw.stdout_matches, "stdout_matches");
        if let (Some(template), Some(value)) = (&stdout_matches, &raw.stdout_matches) {
            self.check_regex(template, value, "stdout_matches");
        }
        let stdout_number_template = raw
            .stdout_number
            .as_ref()
            .filter(|value| value.value.contains("{{"))
            .map(|value| {
                self.template(
                    value,
                    &Scope::new(format!("{place}.expect.stdout_number"), owner),
                )
            });
        let literal_number = raw
            .stdout_number
            .as_ref()
            .filter(|value| !value.value.contains("{{"));
        let stdout_number = literal_number.and_then(|value| {
            let check = NumberCheck::parse(&value.value);
            if check.is_none() {
                let message = format!(
                    "`stdout_number` must be a comparison like `\"< 5\"`, not `{}`",
                    value.value
                );
                self.push(
                    Diagnostic::error("probe-number", message, Some(value.position))
                        .with_help("operators: <, <=, >, >=, ==, !="),
                );
            }
            check
        });
        Expectation {
            exit_code: raw.exit_code.as_ref().map_or(0, |code| code.value),
            stdout_contains,
            stdout_not_contains,
            stdout_matches,
            stdout_number,
            stdout_number_template,
        }
    }

    fn check_regex(&mut self, template: &Template, value: &Spanned<String>, key: &str) {
        if template.is_literal()
            && let Err(error) = regex::Regex::new(&template.text)
        {
            let first_line = error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            let message = format!("`{key}` is not a valid regular expression: {first_line}");
            self.push(Diagnostic::error(
                "invalid-regex",
                message,
                Some(value.position),
            ));
        }
    }

    fn http(&mut self, raw: &RawHttp, label: &str, place: &str, owner: TemplateOwner) -> HttpProbe {
        let scope = |key: &str| Scope::new(format!("{place}.http.{key}"), owner);
        let url = self.template(&raw.url, &scope("url"));
        if url.is_literal()
            && !(url.text.starts_with("http://") || url.text.starts_with("https://"))
        {
            let message = format!(
                "http probe `url` must start with `http://` or `https://`: `{}`",
                url.text
            );
            self.push(Diagnostic::error(
                "probe-url",
                message,
                Some(raw.url.position),
            ));
        }
        let method = raw.method.as_ref().map_or_else(
            || "GET".to_string(),
            |method| method.value.to_ascii_uppercase(),
        );
        if let Some(value) = &raw.method
            && !METHODS.contains(&method.as_str())
        {
            let message = format!("unknown HTTP method `{}`", value.value);
            self.push(
                Diagnostic::error("probe-method", message, Some(value.position))
                    .with_help(format!("use one of {}", METHODS.join(", "))),
            );
        }
        // Headers are sent by the engine itself, never through argv, so an auth header may
        // carry a secret; the engine masks it in every message.
        let headers = match &raw.headers {
            Some(headers) => self.templated_mapping(
                &headers.value,
                &format!("{place}.http.headers"),
                &scope("headers").allow_secrets(),
            ),
            None => Vec::new(),
        };
        let body = raw
            .body
            .as_ref()
            .map(|body| self.template(body, &scope("body")));
        let status = match &raw.status {
            Some(status) => {
                let codes: Vec<u16> = status
                    .value
                    .0
                    .iter()
                    .filter_map(|code| u16::try_from(*code).ok())
                    .filter(|code| (100..=599).contains(code))
                    .collect();
                if codes.len() != status.value.0.len() || codes.is_empty() {
                    let message =
                        "`status` must be HTTP status codes between 100 and 599".to_string();
                    self.push(Diagnostic::error(
                        "probe-status",
                        message,
                        Some(status.position),
                    ));
                }
                codes
            }
            None => vec![200],
        };
        let body_contains = raw
            .body_contains
            .as_ref()
            .map(|value| self.template(value, &scope("body_contains")));
        let body_matches = raw
            .body_matches
            .as_ref()
            .map(|value| self.template(value, &scope("body_matches")));
        if let (Some(template), Some(value)) = (&body_matches, &raw.body_matches) {
            self.check_regex(template, value, "body_matches");
        }
        let body_json = raw
            .body_json
            .as_ref()
            .map(|entries| self.body_json(&entries.value, place, owner))
            .unwrap_or_default();
        let ca_file = raw
            .ca_file
            .as_ref()
            .map(|value| self.ca_file(value, &scope("ca_file")));
        let insecure = raw.insecure.as_ref().is_some_and(|insecure| insecure.value);
        if let Some(value) = raw.insecure.as_ref().filter(|insecure| insecure.value) {
            let ignored = if raw.ca_file.is_some() {
                " (its `ca_file` is not used)"
            } else {
                ""
            };
            let message = format!(
                "probe `{label}` has `insecure: true`: the server's certificate is not verified{ignored}"
            );
            self.push(
                Diagnostic::warning("probe-insecure", message, Some(value.position))
                    .with_help("trust the server's CA with `ca_file` instead"),
            );
        }
        HttpProbe {
            url,
            method,
            headers,
            body,
            status,
            body_contains,
            body_matches,
            body_json,
            max_latency: self.duration(raw.max_latency.as_ref(), "max_latency"),
            timeout: self
                .duration(raw.timeout.as_ref(), "timeout")
                .unwrap_or(DEFAULT_HTTP_TIMEOUT),
            ca_file,
            insecure,
            follow_redirects: raw
                .follow_redirects
                .as_ref()
                .is_some_and(|follow| follow.value),
        }
    }

    /// `body_json` entries: a dotted path with no empty segment, and the value as a template
    /// (a number keeps its spelling, `null` is the text `null`).
    fn body_json(
        &mut self,
        entries: &OrderedMap<Spanned<Scalar>>,
        place: &str,
        owner: TemplateOwner,
    ) -> Vec<(String, Template)> {
        let text = self.source.text();
        let mut checks = Vec::new();
        for (path, value) in entries.iter() {
            if path.value.split('.').any(str::is_empty) {
                let message = format!(
                    "`body_json` path `{}` has an empty segment: write keys joined by dots, like `checks.db`",
                    path.value
                );
                self.push(Diagnostic::error(
                    "probe-body-json",
                    message,
                    Some(path.position),
                ));
                continue;
            }
            let expected = value
                .value
                .written(text)
                .unwrap_or_else(|| "null".to_string());
            let template = self.template(
                &Spanned::new(expected, value.position),
                &Scope::new(format!("{place}.http.body_json.{}", path.value), owner),
            );
            checks.push((path.value.clone(), template));
        }
        checks
    }

    /// The `ca_file` template; a literal path is read now, relative to the runbook directory,
    /// so a file that is not PEM is an error before the run (a missing one only a warning: an
    /// earlier step may write it).
    fn ca_file(&mut self, value: &Spanned<String>, scope: &Scope) -> Template {
        let template = self.template(value, scope);
        if !template.is_literal() {
            return template;
        }
        let path = self.source.directory().join(template.text.trim());
        if !path.exists() {
            let message = format!("`ca_file` `{}` does not exist", template.text);
            self.push(
                Diagnostic::warning("probe-ca-file", message, Some(value.position)).with_help(
                    "the path is relative to the runbook's directory; the probe fails if no step creates the file",
                ),
            );
        } else if let Err(reason) = crate::ca_file::read_ca_file(&path) {
            let message = format!("cannot use `ca_file` `{}`: {reason}", template.text);
            self.push(Diagnostic::error(
                "probe-ca-file",
                message,
                Some(value.position),
            ));
        }
        template
    }
}

fn looks_like_host_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
    })
}
