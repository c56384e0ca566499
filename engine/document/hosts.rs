//! Hosts and rolling rollouts as written (SPEC §12): `hosts`, an inventory file (the same
//! map), `ssh` defaults, `rollout` per group, and a step's `on`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{OrderedMap, RawProbe, Scalar, Spanned};

/// The hosts map: name -> host, in the order written (that order is the rollout order).
pub type RawHosts = OrderedMap<Spanned<RawHost>>;

/// One host: where it is and how to reach it. Everything but `address` is optional.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Name or IP address the SSH client connects to.
    pub address: Spanned<String>,
    /// SSH port (default: `ssh.port`, then the client's own, usually 22).
    pub port: Option<Spanned<i64>>,
    /// Remote user (default: `ssh.user`, then the client's own).
    pub user: Option<Spanned<String>>,
    /// Groups the host belongs to; a step's `on` may name a group.
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    /// Values for templates of this host's instances: `{{host.vars.NAME}}`.
    pub vars: Option<Spanned<OrderedMap<Spanned<Scalar>>>>,
    /// Private key file (default: `ssh.identity_file`).
    pub identity_file: Option<Spanned<String>>,
}

/// `ssh`: connection defaults for every host.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// Remote user of every host without its own.
    pub user: Option<Spanned<String>>,
    /// Private key file of every host without its own.
    pub identity_file: Option<Spanned<String>>,
    /// Limit for opening a connection, a duration.
    pub connect_timeout: Option<Spanned<String>>,
    /// SSH port of every host without its own.
    pub port: Option<Spanned<i64>>,
    /// Any OpenSSH client option (`StrictHostKeyChecking: "yes"`), passed as `-o KEY=VALUE`.
    pub options: Option<Spanned<OrderedMap<Spanned<Scalar>>>>,
}

/// `rollout.<group>`: how a group's hosts go through its steps, batch by batch.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    /// Batch sizes: host counts or `"N%"` of the group (rounded up, at least 1); the last
    /// size repeats.
    pub batch: Option<Spanned<Vec<Spanned<Amount>>>>,
    /// Hosts (a count or `"N%"` of the group) that may fail over the whole rollout
    /// (default 0).
    pub max_failed: Option<Spanned<Amount>>,
    /// Wait between batches, a duration.
    pub pause: Option<Spanned<String>>,
    /// Probes run for each host of a batch once it is done.
    pub verify: Option<Spanned<Vec<RawProbe>>>,
}

/// A host count (`2`) or a share of a group (`"25%"`), as written; `validate` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount(pub Scalar);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Scalar::deserialize(deserializer).map(Amount)
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> Cow<'static, str> {
        "HostCount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+%$" }
            ]
        })
    }
}

/// A step's `on`: one host or group name, or a list of them. A name written alone has no
/// position of its own: the field's is used.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetsVisitor;

        impl<'de> Visitor<'de> for TargetsVisitor {
            type Value = Targets;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a host or group name, or a list of them")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Targets, E> {
                Ok(Targets(vec![Spanned::new(
                    value.to_string(),
                    Default::default(),
                )]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Targets, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = access.next_element::<Spanned<String>>()? {
                    names.push(name);
                }
                Ok(Targets(names))
            }
        }

        deserializer.deserialize_any(TargetsVisitor)
    }
}

impl JsonSchema for Targets {
    fn schema_name() -> Cow<'static, str> {
        "On".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}
