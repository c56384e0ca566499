//! What every task of a run shares: the runbook (with its graph), the template engine, the event
//! emitter, the run's identity and the environment every process gets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::emitter::Emitter;
use super::options::RunOptions;
use crate::model::{DurationValue, EnvEntry, Runbook, Step, Template};
use crate::plan::Context;
use crate::state::RunInfo;
use crate::template::{PreparedContext, TemplateEngine};

/// Shared, read-only state of one run.
#[derive(Debug)]
pub struct RunShared {
    pub runbook: Arc<Runbook>,
    pub engine: TemplateEngine,
    pub emitter: Emitter,
    pub info: RunInfo,
    pub options: RunOptions,
    /// The runbook `env`, rendered once, plus `RUNBOOK_RUN_ID` and `RUNBOOK_RUN_DIR`.
    pub base_env: Vec<(String, String)>,
    /// One approval prompt at a time on the terminal.
    pub approval_lock: tokio::sync::Mutex<()>,
    /// The hosts steps run on, when a step has `on`.
    pub fleet: Option<super::fleet::Fleet>,
}

impl RunShared {
    /// The run's `timeout`, rendered with the run's values. It was checked before anything
    /// started, so a failure here is reported and leaves the run without a limit.
    pub fn run_timeout(&self, context: &Context) -> Option<Duration> {
        let limit = self.runbook.timeout.as_ref()?;
        let renderer = Renderer::new(self, context).ok()?;
        match renderer.duration(limit) {
            Ok(limit) => Some(limit),
            Err(message) => {
                self.emitter.emit(crate::events::Event::Notice {
                    message: format!("{message}: the run has no time limit"),
                });
                None
            }
        }
    }
}

/// Renders templates against one snapshot of the context.
/// The renderer's form of the context is built on the first template that needs it: most
/// steps of a long run have literal commands. Only `env` mappings (and HTTP headers) see
/// secret values: every other template renders against a copy in which each text holding a
/// secret is masked, so a path `validate` did not foresee (iteration, `lookup`, a derived
/// value) hands a process `••••••`, never the secret.
pub(crate) struct Renderer<'a> {
    shared: &'a RunShared,
    source: &'a Context,
    context: std::sync::OnceLock<Result<PreparedContext, String>>,
    with_secrets: std::sync::OnceLock<Result<PreparedContext, String>>,
}

impl<'a> Renderer<'a> {
    pub fn new(shared: &'a RunShared, context: &'a Context) -> Result<Renderer<'a>, String> {
        Ok(Renderer {
            shared,
            source: context,
            context: std::sync::OnceLock::new(),
            with_secrets: std::sync::OnceLock::new(),
        })
    }

    /// The rendered text (secrets masked), or a masked message naming the template's place.
    pub fn render(&self, template: &Template) -> Result<String, String> {
        self.render_in(template, false)
    }

    /// Step `step`'s name, rendered when it is a template; as written when it cannot be (a
    /// name never fails a step).
    pub fn step_name(&self, step: &Step) -> String {
        step.name_template
            .as_ref()
            .and_then(|template| self.render(template).ok())
            .unwrap_or_else(|| step.name.clone())
    }

    /// The rendered text with secret values: for environment entries and HTTP headers only.
    fn render_secret(&self, template: &Template) -> Result<String, String> {
        self.render_in(template, true)
    }

    fn render_in(&self, template: &Template, secrets: bool) -> Result<String, String> {
        if template.is_literal() {
            return Ok(template.text.clone());
        }
        let masker = self.shared.emitter.masker();
        let secrets = secrets || masker.is_empty();
        let cell = if secrets {
            &self.with_secrets
        } else {
            &self.context
        };
        let context = cell
            .get_or_init(|| {
                let prepared = if secrets {
                    PreparedContext::new(self.source.value())
                } else {
                    PreparedContext::new(&mask_values(self.source.value(), &masker))
                };
                prepared.map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)?;
        self.shared
            .engine
            .render_prepared(&template.text, context)
            .map_err(|error| {
                self.shared
                    .emitter
                    .mask(&format!("cannot render `{}`: {error}", template.place))
            })
    }

    /// A duration, rendered and parsed when it is a template; the error names its place.
    pub fn duration(&self, value: &DurationValue) -> Result<Duration, String> {
        value
            .resolve(|template| self.render(template))
            .map_err(|message| self.shared.emitter.mask(&message))
    }

    pub fn render_env(&self, entries: &[EnvEntry]) -> Result<Vec<(String, String)>, String> {
        entries
            .iter()
            .map(|entry| Ok((entry.name.clone(), self.render_secret(&entry.value)?)))
            .collect()
    }

    pub fn render_all(&self, templates: &[Template]) -> Result<Vec<String>, String> {
        templates
            .iter()
            .map(|template| self.render(template))
            .collect()
    }

    /// A working directory: rendered, relative to the runbook's directory; default that.
    pub fn working_directory(&self, cwd: Option<&Template>) -> Result<PathBuf, String> {
        let directory = &self.shared.runbook.directory;
        match cwd {
            Some(template) => Ok(resolve(directory, &self.render(template)?)),
            None => Ok(directory.clone()),
        }
    }
}

/// A copy of `value` in which every text (object keys too) has its secrets masked.
fn mask_values(value: &serde_json::Value, masker: &crate::secrets::Masker) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(masker.mask_str(text)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| mask_values(item, masker)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (masker.mask_str(key), mask_values(item, masker)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
