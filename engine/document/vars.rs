//! Variable declarations: a plain default value, or a map saying where the value comes from.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::Spanned;

/// A YAML scalar read as text: `5`, `true` and `staging` all become strings, since variables
/// are substituted into text. `None` is YAML's null.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub Option<String>);

/// `vars.<name>`: either its default value written directly, or a full declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum RawVar {
    Plain(Scalar),
    Declared(Box<RawVarSpec>),
}

/// A full variable declaration; the keys of SPEC §3.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVarSpec {
    /// Value when no other source gives one; a template that may use `env`, `run` and vars declared above.
    pub default: Option<Spanned<Scalar>>,
    /// Shown by `plan` and in errors about this variable.
    pub description: Option<Spanned<String>>,
    /// With no value from any source, the run does not start.
    pub required: Option<Spanned<bool>>,
    /// The allowed values.
    pub choices: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// Read the value from this environment variable of the engine's process.
    pub env: Option<Spanned<String>>,
    /// Read the value from this file (trailing newline trimmed).
    pub file: Option<Spanned<String>>,
    /// Mask the value everywhere; it may reach processes only through `env` mappings.
    pub secret: Option<Spanned<bool>>,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, number or boolean")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(value.to_string())))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(value.to_string())))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(value.to_string())))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(value.to_string())))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(value.to_string())))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for RawVar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VarVisitor;

        impl<'de> Visitor<'de> for VarVisitor {
            type Value = RawVar;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "a default value or a map with `default`, `env`, `file`, `secret`, ...",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<RawVar, A::Error> {
                RawVarSpec::deserialize(MapAccessDeserializer::new(access))
                    .map(|spec| RawVar::Declared(Box::new(spec)))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RawVar, E> {
                ScalarVisitor.visit_str(value).map(RawVar::Plain)
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<RawVar, E> {
                ScalarVisitor.visit_bool(value).map(RawVar::Plain)
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<RawVar, E> {
                ScalarVisitor.visit_i64(value).map(RawVar::Plain)
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<RawVar, E> {
                ScalarVisitor.visit_u64(value).map(RawVar::Plain)
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<RawVar, E> {
                ScalarVisitor.visit_f64(value).map(RawVar::Plain)
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<RawVar, E> {
                Ok(RawVar::Plain(Scalar(None)))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<RawVar, E> {
                Ok(RawVar::Plain(Scalar(None)))
            }
        }

        deserializer.deserialize_any(VarVisitor)
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean", "null"] })
    }
}

impl JsonSchema for RawVar {
    fn schema_name() -> Cow<'static, str> {
        "Var".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let declared = generator.subschema_for::<RawVarSpec>();
        json_schema!({
            "description": "A default value, or a declaration saying where the value comes from",
            "anyOf": [{ "type": ["string", "number", "boolean", "null"] }, declared]
        })
    }
}
