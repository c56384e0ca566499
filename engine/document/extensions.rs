//! Top-level keys starting with `x-` are ignored (SPEC §2): a place for YAML anchors that
//! steps reuse, as in Compose files. Every other unknown key is still refused by the strict
//! `RawRunbook` types, which read the document through a map that skips the `x-` entries.

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, IntoDeserializer, MapAccess, Visitor,
};

use super::RawRunbook;

/// The prefix of top-level keys the engine ignores.
pub(crate) const EXTENSION_PREFIX: &str = "x-";

/// A runbook document whose `x-` top-level entries were read and dropped.
pub(crate) struct WithExtensions(pub RawRunbook);

impl<'de> Deserialize<'de> for WithExtensions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevel).map(WithExtensions)
    }
}

struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = RawRunbook;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a runbook mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRunbook, A::Error> {
        RawRunbook::deserialize(MapAccessDeserializer::new(SkipExtensions(map)))
    }
}

/// The top-level map without its `x-` entries; their values are still parsed, so anchors
/// defined there can be used below.
struct SkipExtensions<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipExtensions<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.0.next_key_seed(KeySeed(&mut seed))? {
                None => return Ok(None),
                Some(Some(key)) => return Ok(Some(key)),
                Some(None) => {
                    self.0.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Reads a key as text: `None` for an `x-` key, otherwise what the strict types make of it
/// (inside the parser's own key, so an unknown key is reported at its place).
struct KeySeed<'a, K>(&'a mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Option<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(deserializer)?;
        if key.starts_with(EXTENSION_PREFIX) {
            return Ok(None);
        }
        let seed = self
            .0
            .take()
            .ok_or_else(|| D::Error::custom("a key was read twice"))?;
        seed.deserialize(key.into_deserializer()).map(Some)
    }
}
