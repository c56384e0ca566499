//! `RawRunbook` to `Runbook`: every rule of SPEC §2–§6 and §9, each problem collected with
//! its position so that one pass reports all of them.

mod call_effects;
mod diagnostic;
mod expansion;
mod for_each;
mod for_each_instance;
mod hosts;
mod instance_upstream;
mod lint;
mod module_calls;
mod module_files;
mod module_input_defaults;
mod module_rewrite;
mod module_settings;
mod module_settings_checks;
mod modules;
mod output_reads;
mod probes;
mod snippet;
mod snippets;
mod steps;
mod templates;
mod validator;
mod values;
mod vars;

pub use diagnostic::{Diagnostic, OtherFile, Severity};
pub use module_files::{KeptModules, ModuleFile};
pub use validator::{
    HostInputs, ListValues, Validation, validate, validate_kept, validate_with, validate_with_lists,
};
