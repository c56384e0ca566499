//! Reading an internally tagged enum whose tag is the first key of its JSON object, as this
//! engine writes every event (`{"event":"step_started","step":…}`), without serde's
//! buffering: the derived reading of `#[serde(tag = …)]` first copies the whole object into
//! serde's private `Content` tree (a third of the time of reading a journal). Here the tag
//! picks the variant, whose fields are read straight from the rest of the object. Anything
//! else (the tag later in the object, whitespace, any error) is read by the derived
//! `Deserialize`, which stays the judge: what it accepts, refuses and says is unchanged.

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// An enum read tag first (implemented by `tag_first_enum!`).
pub(crate) trait TagFirst: DeserializeOwned {
    /// The tag's key (`event`).
    const TAG: &'static str;
    /// Reads the tag's value, then the fields of its variant from the rest of `map`.
    fn read_rest<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Reads one `T` from the JSON `text`: tag first when the object starts with its tag, else
/// (or when that fails) through the derived `Deserialize`, for its exact verdict.
pub(crate) fn from_str<T: TagFirst>(text: &str) -> serde_json::Result<T> {
    match read_tag_first(text) {
        Some(Ok(value)) => Ok(value),
        _ => serde_json::from_str(text),
    }
}

/// Reads `text` tag first; `None` when it does not start with `{"TAG":`.
pub(crate) fn read_tag_first<T: TagFirst>(text: &str) -> Option<serde_json::Result<T>> {
    text.strip_prefix("{\"")?
        .strip_prefix(T::TAG)?
        .strip_prefix("\":")?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Some(
        deserializer
            .deserialize_map(TagFirstVisitor(PhantomData))
            .and_then(|value| deserializer.end().map(|()| value)),
    )
}

struct TagFirstVisitor<T>(PhantomData<T>);

impl<'de, T: TagFirst> Visitor<'de> for TagFirstVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(formatter, "an object whose first key is `{}`", T::TAG)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key_seed(KeyIs(T::TAG))? {
            Some(true) => T::read_rest(map),
            _ => Err(serde::de::Error::custom(format_args!(
                "the first key is not `{}`",
                T::TAG
            ))),
        }
    }
}

/// A key, compared with the one expected without being copied.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// Declares an enum `#[serde(rename_all = "snake_case", tag = "…", deny_unknown_fields)]`
/// with struct variants, as written, and its `TagFirst` reading: per variant, a struct of the
/// same fields with the same attributes, read from the rest of the object and moved into the
/// variant. The enum is declared once, here; both readings follow its attributes.
macro_rules! tag_first_enum {
    (
        $(#[doc = $doc:literal])*
        #[derive($($derive:path),* $(,)?)]
        #[serde(rename_all = "snake_case", tag = $tag:literal, deny_unknown_fields)]
        $visibility:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident {
                    $( $(#[$field_meta:meta])* $field:ident : $type:ty ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive($($derive),*)]
        #[serde(rename_all = "snake_case", tag = $tag, deny_unknown_fields)]
        $visibility enum $name {
            $(
                $(#[$variant_meta])*
                $variant { $( $(#[$field_meta])* $field: $type ),* }
            ),*
        }

        impl $crate::tag_first::TagFirst for $name {
            const TAG: &'static str = $tag;

            fn read_rest<'de, A: ::serde::de::MapAccess<'de>>(
                mut map: A,
            ) -> ::std::result::Result<Self, A::Error> {
                // An identifier, as the derived reading takes the tag: a string only.
                #[derive(::serde::Deserialize)]
                #[serde(rename_all = "snake_case", variant_identifier)]
                enum Tag {
                    $($variant),*
                }
                match map.next_value::<Tag>()? {
                    $(
                        Tag::$variant => {
                            #[derive(::serde::Deserialize)]
                            #[serde(deny_unknown_fields)]
                            struct Fields {
                                $( $(#[$field_meta])* $field: $type ),*
                            }
                            let Fields { $($field),* } = ::serde::Deserialize::deserialize(
                                ::serde::de::value::MapAccessDeserializer::new(map),
                            )?;
                            Ok($name::$variant { $($field),* })
                        }
                    )*
                }
            }
        }
    };
}

pub(crate) use tag_first_enum;
