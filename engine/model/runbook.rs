//! The validated runbook: variables, environment, steps, hooks.

use std::path::PathBuf;
use std::time::Duration;

use super::{Probe, Step, StepGraph, Template};
use crate::document::Position;

/// A runbook that passed validation. Built only by `validate`.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    /// The file as the user named it.
    pub source_name: String,
    /// The runbook's directory: default working directory of steps, `runbook.dir`.
    pub directory: PathBuf,
    pub vars: Vec<VarDecl>,
    pub env: Vec<EnvEntry>,
    pub concurrency: usize,
    pub timeout: Option<Duration>,
    /// In file order; `Step::needs` holds indices into this list.
    pub steps: Vec<Step>,
    /// The steps' `needs` as a graph, built once by `validate`.
    pub graph: StepGraph,
    pub hooks: Hooks,
    pub rollback_verify: Vec<Probe>,
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id.as_str() == id)
    }

    pub fn var(&self, name: &str) -> Option<&VarDecl> {
        self.vars.iter().find(|var| var.name == name)
    }
}

/// A declared variable (SPEC §3).
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub description: Option<String>,
    pub default: Option<Template>,
    pub required: bool,
    pub choices: Vec<String>,
    pub env: Option<String>,
    pub file: Option<String>,
    pub secret: bool,
    pub position: Position,
}

/// One `NAME: template` entry of an `env` mapping.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    pub name: String,
    pub value: Template,
}

/// A hook command (SPEC §8.8).
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    pub run: Template,
    pub env: Vec<EnvEntry>,
    pub timeout: Duration,
}

/// The hooks, by the moment they run.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub on_start: Vec<Hook>,
    pub on_success: Vec<Hook>,
    pub on_failure: Vec<Hook>,
    pub always: Vec<Hook>,
}
