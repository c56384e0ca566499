//! Verification probes as written: a command with expectations, an HTTP request or a TCP
//! connect, with optional wait-until (`within`) and watch-window (`hold`) timing.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{OrderedMap, Scalar, Script, Spanned};

/// One entry of `verify` or `rollback_verify` (SPEC §5): a name and exactly one kind.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// What the probe proves, shown in progress and reports.
    pub name: Option<Spanned<String>>,
    /// A script; passes when its result meets `expect` (default: exit code 0).
    pub run: Option<Script>,
    /// Expectations on the result of `run`.
    pub expect: Option<Spanned<RawExpect>>,
    /// An HTTP request done by the engine itself.
    pub http: Option<Spanned<RawHttp>>,
    /// `host:port` that must accept a TCP connection.
    pub tcp: Option<Spanned<String>>,
    /// Repeat until the probe passes, failing when this much time has gone by.
    pub within: Option<Spanned<String>>,
    /// Once passing, the probe must keep passing on every sample for this long.
    pub hold: Option<Spanned<String>>,
    /// Time between samples for `within` and `hold` (default 2s).
    pub interval: Option<Spanned<String>>,
    /// Interpreter argv for `run` (default: the runbook's default shell).
    pub shell: Option<Spanned<Vec<Spanned<String>>>>,
    /// Extra environment variables for `run`, templated.
    pub env: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Limit for one sample of `run` (default 1m).
    pub timeout: Option<Spanned<String>>,
}

/// Expectations on a `run` probe.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// Expected exit code (default 0).
    pub exit_code: Option<Spanned<i32>>,
    /// Stdout must contain this text.
    pub stdout_contains: Option<Spanned<String>>,
    /// Stdout must not contain this text.
    pub stdout_not_contains: Option<Spanned<String>>,
    /// Stdout must match this regular expression.
    pub stdout_matches: Option<Spanned<String>>,
    /// Trimmed stdout compared as a number: `"< 5"`, `">= 1"`, `"== 0"`, `"!= 0"`.
    pub stdout_number: Option<Spanned<String>>,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// `http://host:port/path` or `https://host:port/path`.
    pub url: Spanned<String>,
    /// Request method (default GET).
    pub method: Option<Spanned<String>>,
    /// Request headers.
    pub headers: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Request body.
    pub body: Option<Spanned<String>>,
    /// Accepted status code or codes (default 200).
    pub status: Option<Spanned<StatusCodes>>,
    /// The response body must contain this text.
    pub body_contains: Option<Spanned<String>>,
    /// The response body must match this regular expression.
    pub body_matches: Option<Spanned<String>>,
    /// The JSON body must hold these values: a dotted path (`checks.db`) to the value it must
    /// equal, compared as numbers when both read as numbers, else as text.
    pub body_json: Option<Spanned<OrderedMap<Spanned<Scalar>>>>,
    /// The response must arrive within this time.
    pub max_latency: Option<Spanned<String>>,
    /// Limit for the whole request (default 10s).
    pub timeout: Option<Spanned<String>>,
    /// A PEM file of CA certificates trusted on top of the system's roots, relative to the
    /// runbook's directory.
    pub ca_file: Option<Spanned<String>>,
    /// Skip certificate verification (`validate` warns).
    pub insecure: Option<Spanned<bool>>,
    /// Follow redirects (default false: a 3xx is the status seen).
    pub follow_redirects: Option<Spanned<bool>>,
}

/// `status: 200` or `status: [200, 204]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCodes(pub Vec<i64>);

impl<'de> Deserialize<'de> for StatusCodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;

        impl<'de> Visitor<'de> for StatusVisitor {
            type Value = StatusCodes;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a status code or a list of status codes")
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<StatusCodes, E> {
                Ok(StatusCodes(vec![value]))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<StatusCodes, E> {
                let value =
                    i64::try_from(value).map_err(|_| E::custom("status code out of range"))?;
                Ok(StatusCodes(vec![value]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<StatusCodes, A::Error> {
                let mut codes = Vec::new();
                while let Some(code) = access.next_element::<i64>()? {
                    codes.push(code);
                }
                Ok(StatusCodes(codes))
            }
        }

        deserializer.deserialize_any(StatusVisitor)
    }
}

impl JsonSchema for StatusCodes {
    fn schema_name() -> Cow<'static, str> {
        "StatusCodes".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 }, "minItems": 1 }
            ]
        })
    }
}
