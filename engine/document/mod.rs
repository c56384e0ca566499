//! The YAML document as written: serde types that mirror the file one to one, each value
//! carrying its position. This is the only module that parses YAML.

mod extensions;
mod hosts;
mod map;
mod parse;
mod probe;
mod runbook;
mod spanned;
mod step;
mod vars;

pub use hosts::{Amount, RawHost, RawHosts, RawRollout, RawSsh, Targets};
pub use map::OrderedMap;
pub use parse::{ParseError, parse, parse_inventory, parse_reporting_all};
pub use probe::{RawExpect, RawHttp, RawProbe, StatusCodes};
pub use runbook::{RawDefaults, RawHook, RawHooks, RawRunbook};
pub use spanned::{Position, Spanned};
pub use step::{
    AfterSkipped, CompensationField, OnTimeout, OutputField, RawCompensation, RawOutput, RawRetry,
    RawStep, Script,
};
pub use vars::{RawVar, RawVarSpec, Scalar, VarType};
