//! The validated inventory (SPEC §12): hosts in rollout order, `ssh` defaults, and the
//! rollout of each group that has one. Built only by `validate`.

use std::time::Duration;

use super::{DurationValue, Probe};
use crate::document::Position;

/// One remote host.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// `host.vars.*`, in the order written.
    pub vars: Vec<(String, String)>,
    pub identity_file: Option<String>,
    /// The file the host is written in (the runbook or an inventory file), for messages.
    pub file: String,
    pub position: Position,
}

/// `ssh`: defaults for every host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SshDefaults {
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub port: Option<u16>,
    /// OpenSSH client options, in the order written.
    pub options: Vec<(String, String)>,
}

/// A batch size or a failure budget: a host count or a share of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCount {
    Hosts(usize),
    /// Percent of the group, 1-100 for a batch, 0-100 for `max_failed`.
    Percent(u32),
}

impl HostCount {
    /// The count for a group of `group_size` hosts, a share rounded up.
    pub fn of(self, group_size: usize) -> usize {
        match self {
            HostCount::Hosts(count) => count,
            HostCount::Percent(percent) => (group_size * percent as usize).div_ceil(100),
        }
    }
}

impl std::fmt::Display for HostCount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostCount::Hosts(count) => write!(formatter, "{count}"),
            HostCount::Percent(percent) => write!(formatter, "{percent}%"),
        }
    }
}

/// `rollout.<group>`.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub group: String,
    /// Batch sizes as written (default `[1]`); the last repeats.
    pub batch: Vec<HostCount>,
    pub max_failed: HostCount,
    /// Between batches; may be a template of vars (`"{{vars.pause}}"`).
    pub pause: Option<DurationValue>,
    pub verify: Vec<Probe>,
    pub position: Position,
}

/// Every host a runbook may use, and how they are reached and rolled out.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// In rollout order: the runbook's `hosts` as written, then each inventory file's.
    pub hosts: Vec<Host>,
    pub ssh: SshDefaults,
    pub rollouts: Vec<Rollout>,
}

impl Inventory {
    pub fn host(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|host| host.name == name)
    }

    /// Indices of the hosts in `group`, in inventory order.
    pub fn group(&self, group: &str) -> Vec<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, host)| host.groups.iter().any(|name| name == group))
            .map(|(index, _)| index)
            .collect()
    }

    /// Every group name, in the order first seen.
    pub fn group_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for host in &self.hosts {
            for group in &host.groups {
                if !names.contains(&group.as_str()) {
                    names.push(group);
                }
            }
        }
        names
    }

    pub fn rollout(&self, group: &str) -> Option<&Rollout> {
        self.rollouts.iter().find(|rollout| rollout.group == group)
    }
}

/// A step's `on`, resolved: the names as written and the hosts they select.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Host and group names as written.
    pub targets: Vec<String>,
    /// Indices into `Inventory::hosts`, in inventory order, each once.
    pub hosts: Vec<usize>,
    /// The group with a `rollout` this step belongs to: its `on` names that group.
    pub rollout: Option<String>,
}
