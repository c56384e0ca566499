//! `Spanned<T>`: a value with the position it was read from, so validation can point at it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Where a value starts in the runbook: 1-based line and character column. `u32`: a
/// runbook holds tens of thousands of positions (one for every value), and the reader caps
/// a file far below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// A position from a line and column counted as `usize`; past `u32::MAX` (never in a
    /// file the reader accepts) it saturates.
    pub fn new(line: usize, column: usize) -> Position {
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    /// The 1-based line, 0 when unknown.
    pub fn line(self) -> usize {
        self.line as usize
    }

    /// The 1-based character column, 0 when unknown.
    pub fn column(self) -> usize {
        self.column as usize
    }
}

/// A value read from YAML together with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub position: Position,
}

impl<T> Spanned<T> {
    pub fn new(value: T, position: Position) -> Spanned<T> {
        Spanned { value, position }
    }
}

/// serde-saphyr hands a value's location to a `serde_saphyr::Spanned` through a newtype of
/// this name, as a map `{MARKER: true, value, referenced, defined}`, each location a map
/// `{line, column, span, source_id}`. Read here directly: only `value` and the line and
/// column of `referenced` are kept, so the rest is not decoded, and the marker key is not
/// copied into a `String` (for a 10,000-step runbook, 80,000 values: a tenth of the parse).
const SPANNED_NEWTYPE: &str = "__yaml_spanned";
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";
const SPANNED_FIELDS: &[&str] = &[SPANNED_MARKER, "value", "referenced", "defined"];
const LOCATION_FIELDS: &[&str] = &["line", "column", "span", "source_id"];

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(SPANNED_NEWTYPE, SpannedVisitor(PhantomData))
    }
}

struct SpannedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
    type Value = Spanned<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("Spanned", SPANNED_FIELDS, ViewVisitor(PhantomData))
    }
}

/// The location view, or (from a deserializer that is not serde-saphyr's) the plain value,
/// which then has no position.
struct ViewVisitor<T>(PhantomData<T>);

fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Position::default())
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ViewVisitor<T> {
    type Value = Spanned<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<ViewKey>()? {
            None => T::deserialize(MapAccessDeserializer::new(map)).map(unplaced),
            Some(ViewKey::Marker) => {
                map.next_value::<IgnoredAny>()?;
                let mut value = None;
                let mut position = None;
                while let Some(key) = map.next_key::<ViewKey>()? {
                    match key {
                        ViewKey::Value => value = Some(map.next_value()?),
                        ViewKey::Referenced => {
                            position = Some(map.next_value::<LineAndColumn>()?.0);
                        }
                        _ => {
                            map.next_value::<serde_saphyr::Location>()?;
                        }
                    }
                    // `defined` (where an alias's anchor is) is not used.
                    if value.is_some() && position.is_some() {
                        break;
                    }
                }
                let value = value.ok_or_else(|| serde::de::Error::missing_field("value"))?;
                Ok(Spanned::new(value, position.unwrap_or_default()))
            }
            Some(first) => T::deserialize(MapAccessDeserializer::new(Prepend {
                first: Some(first.into_text()),
                tail: map,
            }))
            .map(unplaced),
        }
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(unplaced)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        T::deserialize(().into_deserializer()).map(unplaced)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        T::deserialize(().into_deserializer()).map(unplaced)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq)).map(unplaced)
    }
}

/// A key of the location view, told apart without being copied.
enum ViewKey {
    Marker,
    Value,
    Referenced,
    Line,
    Column,
    Span,
    Other(String),
}

impl ViewKey {
    /// The key as written: the first key of a plain map is handed back to its value.
    fn into_text(self) -> String {
        match self {
            ViewKey::Marker => SPANNED_MARKER.to_string(),
            ViewKey::Value => "value".to_string(),
            ViewKey::Referenced => "referenced".to_string(),
            ViewKey::Line => "line".to_string(),
            ViewKey::Column => "column".to_string(),
            ViewKey::Span => "span".to_string(),
            ViewKey::Other(key) => key,
        }
    }
}

impl<'de> Deserialize<'de> for ViewKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = ViewKey;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a key")
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<ViewKey, E> {
                Ok(match key {
                    SPANNED_MARKER => ViewKey::Marker,
                    "value" => ViewKey::Value,
                    "referenced" => ViewKey::Referenced,
                    "line" => ViewKey::Line,
                    "column" => ViewKey::Column,
                    "span" => ViewKey::Span,
                    _ => ViewKey::Other(key.to_string()),
                })
            }
        }

        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The line and column of a `serde_saphyr::Location` view; its span is not decoded.
struct LineAndColumn(Position);

impl<'de> Deserialize<'de> for LineAndColumn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LocationVisitor;

        impl<'de> Visitor<'de> for LocationVisitor {
            type Value = LineAndColumn;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a location")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineAndColumn, A::Error> {
                let mut line = None;
                let mut column = None;
                while let Some(key) = map.next_key::<ViewKey>()? {
                    match key {
                        ViewKey::Line => line = Some(map.next_value::<u64>()?),
                        ViewKey::Column => column = Some(map.next_value::<u64>()?),
                        ViewKey::Span => {
                            map.next_value::<serde_saphyr::Span>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    if let (Some(line), Some(column)) = (line, column) {
                        return Ok(LineAndColumn(Position {
                            line: u32::try_from(line).unwrap_or(0),
                            column: u32::try_from(column).unwrap_or(0),
                        }));
                    }
                }
                Ok(LineAndColumn(Position::default()))
            }
        }

        deserializer.deserialize_struct("Location", LOCATION_FIELDS, LocationVisitor)
    }
}

/// A map with its first key already read.
struct Prepend<A> {
    first: Option<String>,
    tail: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prepend<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(first) => seed.deserialize(first.into_deserializer()).map(Some),
            None => self.tail.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.tail.next_value_seed(seed)
    }
}

/// The position is bookkeeping, not part of the format: the schema is the inner value's.
impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Guards the reading of serde-saphyr's span protocol (`SPANNED_NEWTYPE`, `SPANNED_MARKER`):
    /// should an upgrade change it, values would silently lose their positions.
    #[test]
    fn values_keep_where_they_were_written() {
        let text = "first: 1\nsecond:\n  - x\n  - {inner: true}\nthird: &a text\nfourth: *a\n";
        let parsed: BTreeMap<String, Spanned<serde_json::Value>> =
            serde_saphyr::from_str(text).expect("valid YAML");
        let at = |key: &str| {
            let position = parsed[key].position;
            (position.line(), position.column())
        };
        assert_eq!(at("first"), (1, 8));
        assert_eq!(at("second"), (3, 3));
        // An anchored value is placed after its anchor, as serde-saphyr places it.
        assert_eq!(at("third"), (5, 11));
        // An alias is placed where it is used, not at its anchor.
        assert_eq!(at("fourth"), (6, 9));
        assert_eq!(
            parsed["second"].value,
            serde_json::json!(["x", {"inner": true}])
        );
        assert_eq!(parsed["fourth"].value, serde_json::json!("text"));
    }
}
