//! A used module's own top-level `env` and `defaults` (SPEC §13): they apply to the module's
//! steps as if the module were run alone. Its `env` goes under each step's own `env` and over
//! the caller's top-level `env`; its `defaults` fill what a step does not say, before the
//! caller's. Each is checked in the module's scope, as written in the module's file.

use crate::document::{OrderedMap, RawDefaults, RawRunbook, Spanned};
use crate::source::Source;

/// The `env` and `defaults` of one module enclosing a step.
#[derive(Debug, Clone)]
pub(super) struct ModuleSettings {
    pub env: Option<Spanned<OrderedMap<Spanned<String>>>>,
    pub defaults: Option<Spanned<RawDefaults>>,
    /// The step's rewrites from this index on are the module's context.
    pub rewrites_from: usize,
    /// The module's file.
    pub source: Source,
}

impl ModuleSettings {
    /// The settings of `module` (read from `source`), when it has any.
    pub(super) fn of(
        module: &RawRunbook,
        source: &Source,
        rewrites_from: usize,
    ) -> Option<ModuleSettings> {
        if module.env.is_none() && module.defaults.is_none() {
            return None;
        }
        Some(ModuleSettings {
            env: module.env.clone(),
            defaults: module.defaults.clone(),
            rewrites_from,
            source: source.clone(),
        })
    }
}
