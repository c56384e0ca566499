//! Variable declarations: a plain default value, or a map saying where the value comes from.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::Spanned;

/// A YAML scalar read as text: `5`, `true` and `staging` all become strings, since variables
/// are substituted into text. `None` is YAML's null. A number keeps the text it was written
/// with (`1.10`, `0755`, `0x1F`): the parser hands over only its value, so `parse` puts back
/// the source text, found through the byte range in the second field (numbers only).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(
    pub Option<String>,
    pub(super) Option<Range<usize>>,
    pub(super) bool,
);

impl Scalar {
    /// A list of `items`, as if written as a YAML list.
    pub fn list(items: &[String]) -> Scalar {
        let json = serde_json::Value::Array(
            items
                .iter()
                .cloned()
                .map(serde_json::Value::String)
                .collect(),
        );
        Scalar(Some(json.to_string()), None, true)
    }

    /// Whether the value was written as a YAML list (`[a, b]`): its text is then the items as a
    /// JSON array of strings (`["a","b"]`), the form a `list` var's value has everywhere.
    pub fn is_list(&self) -> bool {
        self.2
    }

    /// The value as written in `text` (the document it was parsed from): a number keeps its
    /// spelling (`1.10`, `0755`) instead of the parser's rendering of it.
    pub fn written(&self, text: &str) -> Option<String> {
        self.1
            .clone()
            .and_then(|range| text.get(range))
            .map(str::to_owned)
            .or_else(|| self.0.clone())
    }
}

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
    /// `string` (the default) or `list`: a list comes from a YAML list, `--var k=a,b,c` or a
    /// JSON array, and feeds `{{#each}}`.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<VarType>>,
}

/// The `type` of a var.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    /// One text value.
    String,
    /// A list of text values.
    List,
}

/// A scalar as the parser hands it over; a number's text is the parser's rendering of it.
struct Token {
    text: Option<String>,
    number: bool,
    list: bool,
}

impl Token {
    fn text(value: impl ToString) -> Token {
        Token {
            text: Some(value.to_string()),
            number: false,
            list: false,
        }
    }

    fn number(value: impl ToString) -> Token {
        Token {
            text: Some(value.to_string()),
            number: true,
            list: false,
        }
    }

    /// A YAML list of scalars, kept as a JSON array of their texts.
    fn list<'de, A: SeqAccess<'de>>(mut access: A) -> Result<Token, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Token>()? {
            if item.list {
                return Err(serde::de::Error::custom(
                    "a list value holds strings, numbers or booleans, not lists",
                ));
            }
            items.push(serde_json::Value::String(item.text.unwrap_or_default()));
        }
        Ok(Token {
            text: Some(serde_json::Value::Array(items).to_string()),
            number: false,
            list: true,
        })
    }

    /// Keeps where a number was written, so `parse` can put back its text.
    fn into_scalar(self, location: &serde_saphyr::Location) -> Scalar {
        let span = location.span();
        let range = span
            .byte_offset()
            .zip(span.byte_len())
            .filter(|_| self.number)
            .and_then(|(offset, length)| {
                let start = usize::try_from(offset).ok()?;
                Some(start..start + usize::try_from(length).ok()?)
            });
        Scalar(self.text, range, self.list)
    }
}

struct TokenVisitor;

impl<'de> Visitor<'de> for TokenVisitor {
    type Value = Token;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, number, boolean or a list of them")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<Token, A::Error> {
        Token::list(access)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Token, E> {
        Ok(Token::text(value))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Token, E> {
        Ok(Token::text(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Token, E> {
        Ok(Token::number(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Token, E> {
        Ok(Token::number(value))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Token, E> {
        Ok(Token::number(value))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Token, E> {
        Ok(Token {
            text: None,
            number: false,
            list: false,
        })
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Token, E> {
        self.visit_unit()
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TokenVisitor)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = serde_saphyr::Spanned::<Token>::deserialize(deserializer)?;
        Ok(token.value.into_scalar(&token.defined))
    }
}

/// A variable as the parser hands it over, before its position is known.
enum VarShape {
    Plain(Token),
    Declared(Box<RawVarSpec>),
}

impl<'de> Deserialize<'de> for VarShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VarVisitor;

        impl<'de> Visitor<'de> for VarVisitor {
            type Value = VarShape;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "a default value or a map with `default`, `env`, `file`, `secret`, ...",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<VarShape, A::Error> {
                RawVarSpec::deserialize(MapAccessDeserializer::new(access))
                    .map(|spec| VarShape::Declared(Box::new(spec)))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<VarShape, E> {
                TokenVisitor.visit_str(value).map(VarShape::Plain)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<VarShape, A::Error> {
                Token::list(access).map(VarShape::Plain)
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<VarShape, E> {
                TokenVisitor.visit_bool(value).map(VarShape::Plain)
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<VarShape, E> {
                TokenVisitor.visit_i64(value).map(VarShape::Plain)
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<VarShape, E> {
                TokenVisitor.visit_u64(value).map(VarShape::Plain)
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<VarShape, E> {
                TokenVisitor.visit_f64(value).map(VarShape::Plain)
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<VarShape, E> {
                TokenVisitor.visit_unit().map(VarShape::Plain)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<VarShape, E> {
                TokenVisitor.visit_none().map(VarShape::Plain)
            }
        }

        deserializer.deserialize_any(VarVisitor)
    }
}

impl<'de> Deserialize<'de> for RawVar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shape = serde_saphyr::Spanned::<VarShape>::deserialize(deserializer)?;
        Ok(match shape.value {
            VarShape::Plain(token) => RawVar::Plain(token.into_scalar(&shape.defined)),
            VarShape::Declared(spec) => RawVar::Declared(spec),
        })
    }
}

impl RawVar {
    /// Every scalar of the declaration: the plain value, or the default and the choices.
    pub(super) fn scalars_mut(&mut self) -> Vec<&mut Scalar> {
        match self {
            RawVar::Plain(scalar) => vec![scalar],
            RawVar::Declared(spec) => {
                let default = spec.default.iter_mut().map(|default| &mut default.value);
                let choices = spec
                    .choices
                    .iter_mut()
                    .flat_map(|choices| choices.value.iter_mut())
                    .map(|choice| &mut choice.value);
                default.chain(choices).collect()
            }
        }
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean", "null"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
            ]
        })
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
            "anyOf": [
                { "type": ["string", "number", "boolean", "null"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } },
                declared
            ]
        })
    }
}
