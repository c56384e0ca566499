//! A duration as the runbook wrote it: a literal parsed by `validate`, or a template
//! (`timeout: "{{vars.t}}"`) checked once its values are known and parsed when it is used.

use std::time::Duration;

use super::Template;

/// Durations above this are refused: no step waits a year, and a bound keeps time
/// arithmetic far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A step, compensation, hook or run duration.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationValue {
    /// Written as `30s`: already parsed.
    Fixed(Duration),
    /// Written as a template: rendered and parsed when it is used.
    /// Boxed: a step holds three durations (timeout, grace, retry delay), rarely templates.
    Template(Box<Template>),
}

impl DurationValue {
    /// The value when it needs no rendering.
    pub fn fixed(&self) -> Option<Duration> {
        match self {
            DurationValue::Fixed(duration) => Some(*duration),
            DurationValue::Template(_) => None,
        }
    }

    /// The template, when it is one.
    pub fn template(&self) -> Option<&Template> {
        match self {
            DurationValue::Fixed(_) => None,
            DurationValue::Template(template) => Some(template),
        }
    }

    /// The duration, rendering a template with `render`; the error names the template's place
    /// and what it rendered to.
    pub fn resolve(
        &self,
        render: impl FnOnce(&Template) -> Result<String, String>,
    ) -> Result<Duration, String> {
        match self {
            DurationValue::Fixed(duration) => Ok(*duration),
            DurationValue::Template(template) => {
                let text = render(template)?;
                parse_rendered(template, &text)
            }
        }
    }

    /// How a plan shows it: the literal in a person's words, a template as `render` gives it.
    pub fn shown(&self, render: impl FnOnce(&Template) -> String) -> String {
        match self {
            DurationValue::Fixed(duration) => humantime::format_duration(*duration).to_string(),
            DurationValue::Template(template) => render(template).trim().to_string(),
        }
    }
}

/// Parses what a duration template rendered to; the error names the template's place.
pub fn parse_rendered(template: &Template, text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration > MAX_DURATION => Err(format!(
            "`{}` renders to `{trimmed}`, a duration over the limit of 366 days",
            template.place
        )),
        // A zero limit would stop every attempt at once, as a literal `0s` is refused for.
        Ok(duration) if duration.is_zero() && template.place.ends_with("timeout") => Err(format!(
            "`{}` renders to `{trimmed}`: a timeout must be more than zero",
            template.place
        )),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!(
            "`{}` renders to `{trimmed}`, not a duration such as `30s` ({error})",
            template.place
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> DurationValue {
        DurationValue::Template(Box::new(Template::literal(text, "steps[0].timeout")))
    }

    #[test]
    fn fixed_values_need_no_rendering() {
        let value = DurationValue::Fixed(Duration::from_secs(90));
        assert_eq!(value.fixed(), Some(Duration::from_secs(90)));
        assert_eq!(
            value.resolve(|_| Err("not called".into())),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(value.shown(|_| String::new()), "1m 30s");
    }

    #[test]
    fn templates_are_parsed_when_resolved() {
        let rendered = |text: &'static str| move |_: &Template| Ok::<_, String>(text.to_string());
        assert_eq!(
            template("{{vars.t}}").resolve(rendered(" 2m\n")),
            Ok(Duration::from_secs(120))
        );
        let error = template("{{vars.t}}")
            .resolve(rendered("banana"))
            .expect_err("banana is no duration");
        assert!(
            error.starts_with("`steps[0].timeout` renders to `banana`, not a duration"),
            "{error}"
        );
        let error = template("{{vars.t}}")
            .resolve(rendered("400d"))
            .expect_err("too long");
        assert!(error.contains("over the limit"), "{error}");
    }
}
