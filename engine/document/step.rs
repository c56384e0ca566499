//! A step as written: its command or gate, dependencies, probes and compensation.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::{OrderedMap, RawProbe, Spanned, Targets};

/// A shell script text; a template.
pub type Script = Spanned<String>;

/// One entry of `steps` (SPEC §4).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Unique identifier, `[a-z0-9][a-z0-9_-]*`.
    pub id: Spanned<String>,
    /// Display name (default: the id).
    pub name: Option<Box<Spanned<String>>>,
    /// Free text for plan and reports.
    pub description: Option<Box<Spanned<String>>>,
    /// Ids of the steps this one waits for.
    pub needs: Option<Spanned<Vec<Spanned<String>>>>,
    /// Template; the step runs only when it renders truthy, otherwise it is skipped.
    #[serde(rename = "if")]
    pub condition: Option<Box<Spanned<String>>>,
    /// Script text executed by `shell`.
    pub run: Option<Script>,
    /// A question: the step is a manual approval gate; excludes `run`.
    pub approve: Option<Box<Spanned<String>>>,
    /// Interpreter argv; the script is passed as the last argument.
    pub shell: Option<Box<Spanned<Vec<Spanned<String>>>>>,
    /// Extra environment variables, templated.
    pub env: Option<Box<Spanned<OrderedMap<Spanned<String>>>>>,
    /// Working directory, templated; default: the runbook file's directory.
    pub cwd: Option<Box<Spanned<String>>>,
    /// Limit for one attempt of `run`, e.g. `30s`, `10m`.
    pub timeout: Option<Box<Spanned<String>>>,
    /// Up to `attempts` tries in all, waiting `delay` (times `backoff` each time) between them.
    pub retry: Option<Box<Spanned<RawRetry>>>,
    /// A failure is recorded as `failed (allowed)`; dependents still run, no rollback.
    pub allow_failure: Option<Spanned<bool>>,
    /// Probes run after `run` succeeds; any failing probe fails the step.
    pub verify: Option<Box<Spanned<Vec<RawProbe>>>>,
    /// The compensation: a script, or a map with `run` and options.
    pub rollback: Option<Spanned<CompensationField>>,
    /// Time between SIGTERM and SIGKILL of the step's process group on timeout or cancel (default 10s).
    pub grace: Option<Box<Spanned<String>>>,
    /// Default true; false means `resume` will not re-run it blindly.
    pub idempotent: Option<Spanned<bool>>,
    /// A point of no return: once it has succeeded, nothing before it is compensated.
    pub pivot: Option<Spanned<bool>>,
    /// The step changes nothing, so it needs no `rollback` (silences that warning).
    pub readonly: Option<Spanned<bool>>,
    /// Its effect cannot be undone (a message sent, a page): no `rollback`, no warning,
    /// marked in plan and reports.
    pub irreversible: Option<Spanned<bool>>,
    /// `run`: run even when a needed step was skipped (default `skip`: skipped too).
    pub after_skipped: Option<Spanned<AfterSkipped>>,
    /// For an approval gate with a `timeout`: the answer when nobody answered (default `deny`).
    pub on_timeout: Option<Spanned<OnTimeout>>,
    /// Output keys the step promises to write to `$RUNBOOK_OUTPUT`: a key, or
    /// `{name, secret: true}` for a value masked everywhere and usable only in `env`.
    pub outputs: Option<Box<Spanned<Vec<Spanned<OutputField>>>>>,
    /// Run on remote hosts: a host, a group, or a list; one instance `id@host` per host.
    pub on: Option<Box<Spanned<Targets>>>,
    /// One instance `id[item]` per item of this list, or of the `list` var it names
    /// (`"{{vars.regions}}"`); items `[A-Za-z0-9_.-]+`, with `item` and `item_index` in its
    /// templates; a step that needs `id` waits for all of them. On a module call, one instance
    /// of each module step per item (`id.<step>[item]`).
    pub for_each: Option<Box<Spanned<super::Scalar>>>,
    /// A module: a runbook file (relative to this file) whose steps join this runbook's DAG
    /// as `id.<step>`, each taking the call's `if`, `on` and `for_each`; excludes `run` and
    /// `approve`.
    pub uses: Option<Box<Spanned<String>>>,
    /// The module's inputs (its `vars`): a literal, or a template of the caller's context.
    pub with: Option<Box<Spanned<OrderedMap<Spanned<String>>>>>,
}

/// What a step does when a step it needs was skipped (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterSkipped {
    /// Skipped too (the default): one `if` switches off a whole branch.
    Skip,
    /// Runs anyway: a join after alternative branches.
    Run,
}

/// The answer of an approval gate nobody answered before its `timeout` (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Approve,
    Deny,
}

/// `{name, secret}`: a promised output written as a map.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// The output key.
    pub name: Spanned<String>,
    /// Mask the value everywhere, allow it only in `env`, keep it outside the journal.
    pub secret: Option<Spanned<bool>>,
}

/// An entry of `outputs`: a key, or `{name, secret}`. Written by hand for the same reason
/// as `CompensationField`; a key written alone has no position of its own: the entry's is
/// used.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputField(pub RawOutput);

impl<'de> Deserialize<'de> for OutputField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OutputVisitor;

        impl<'de> Visitor<'de> for OutputVisitor {
            type Value = OutputField;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an output key or a map with `name` and `secret`")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OutputField, E> {
                Ok(OutputField(RawOutput {
                    name: Spanned::new(value.to_string(), Default::default()),
                    secret: None,
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<OutputField, A::Error> {
                RawOutput::deserialize(MapAccessDeserializer::new(access)).map(OutputField)
            }
        }

        deserializer.deserialize_any(OutputVisitor)
    }
}

impl JsonSchema for OutputField {
    fn schema_name() -> Cow<'static, str> {
        "Output".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<RawOutput>();
        json_schema!({ "anyOf": [{ "type": "string" }, full] })
    }
}

/// `retry: {attempts, delay, backoff}`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts in all, at least 1.
    pub attempts: Spanned<u32>,
    /// Wait before the second attempt (default 1s).
    pub delay: Option<Spanned<String>>,
    /// Factor applied to the delay after each attempt (default 1.0).
    pub backoff: Option<Spanned<f64>>,
}

/// A compensation: `rollback: <script>` or `rollback: {run, ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCompensation {
    /// Script text executed by `shell`.
    pub run: Script,
    /// Interpreter argv (default: the step's shell).
    pub shell: Option<Spanned<Vec<Spanned<String>>>>,
    /// Extra environment variables, templated.
    pub env: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Working directory (default: the step's).
    pub cwd: Option<Spanned<String>>,
    /// Limit for one attempt.
    pub timeout: Option<Spanned<String>>,
    /// Retry policy of the compensation.
    pub retry: Option<Spanned<RawRetry>>,
    /// Probes proving the compensation worked.
    pub verify: Option<Spanned<Vec<RawProbe>>>,
    /// Compensate only when the step itself succeeded.
    pub only_if_succeeded: Option<Spanned<bool>>,
}

impl RawCompensation {
    fn from_script(run: String) -> RawCompensation {
        RawCompensation {
            run: Spanned::new(run, Default::default()),
            shell: None,
            env: None,
            cwd: None,
            timeout: None,
            retry: None,
            verify: None,
            only_if_succeeded: None,
        }
    }
}

/// The `rollback` field: a compensation that also accepts the script shorthand. Written by
/// hand because serde's `untagged` would replace every error inside the map with "did not
/// match any variant". A shorthand script has no position of its own: the field's is used.
/// Boxed: most steps have none, and inline it was a quarter of every `RawStep`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompensationField(pub Box<RawCompensation>);

impl<'de> Deserialize<'de> for CompensationField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CompensationVisitor;

        impl<'de> Visitor<'de> for CompensationVisitor {
            type Value = CompensationField;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a script or a map with `run`")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<CompensationField, E> {
                Ok(CompensationField(Box::new(RawCompensation::from_script(
                    value.to_string(),
                ))))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                access: A,
            ) -> Result<CompensationField, A::Error> {
                RawCompensation::deserialize(MapAccessDeserializer::new(access))
                    .map(|compensation| CompensationField(Box::new(compensation)))
            }
        }

        deserializer.deserialize_any(CompensationVisitor)
    }
}

impl JsonSchema for CompensationField {
    fn schema_name() -> Cow<'static, str> {
        "Rollback".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<RawCompensation>();
        json_schema!({ "anyOf": [{ "type": "string" }, full] })
    }
}
