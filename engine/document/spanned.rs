//! `Spanned<T>`: a value with the position it was read from, so validation can point at it.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        let location = spanned.referenced;
        let position = Position {
            line: u32::try_from(location.line()).unwrap_or(0),
            column: u32::try_from(location.column()).unwrap_or(0),
        };
        Ok(Spanned {
            value: spanned.value,
            position,
        })
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
