//! The processes of some step groups, for stopping them (`StepTree`): the groups, checked by
//! their leader's start time, and what their leaders started that left the group with
//! `setpgid`, found through `/proc` as descendants in the same session.

use std::collections::HashMap;
use std::io;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::unix::{signal_group, start_time_of_live};

/// One live or zombie process, as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy)]
struct ProcessInfo {
    parent: u32,
    group: u32,
    session: u32,
    start_time: u64,
    zombie: bool,
}

/// Every process in `/proc`, by pid.
fn snapshot() -> HashMap<u32, ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, process_info(pid)?)))
        .collect()
}

fn process_info(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // Fields 3 (state), 4 (parent), 5 (group), 6 (session) and 22 (start time).
    Some(ProcessInfo {
        parent: fields.get(1)?.parse().ok()?,
        group: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        zombie: matches!(fields.first(), Some(&("Z" | "X"))),
    })
}

/// A process that left its step's group with `setpgid` (not `setsid`: it stayed in the
/// session), found as a descendant of the step's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Escaped {
    pid: u32,
    start_time: u64,
    /// It leads a group of its own, which its children share: the signal goes to the group.
    leads_group: bool,
}

/// What to stop of some step process groups: the groups still the ones registered (their
/// leader, by pid and start time, alive or gone, never a newer process that reuses the id), and
/// what their leaders started that moved to another group of the same session with `setpgid`.
/// Processes that detached with `setsid` are left alone: that is how a step starts a service.
#[derive(Debug, Default)]
pub(super) struct StepTree {
    /// (group, its leader's start time)
    groups: Vec<(u32, u64)>,
    escaped: Vec<Escaped>,
}

impl StepTree {
    /// The tree of the groups given as (group id, leader's start time).
    pub(super) fn of_groups(groups: impl IntoIterator<Item = (u32, u64)>) -> StepTree {
        let snapshot = snapshot();
        let groups = groups
            .into_iter()
            .filter(|&(group, start_time)| {
                // A leader gone from `/proc` leaves its id reserved while members remain.
                snapshot
                    .get(&group)
                    .is_none_or(|leader| leader.start_time == start_time)
            })
            .collect();
        let mut tree = StepTree {
            groups,
            escaped: Vec::new(),
        };
        tree.find_escaped(&snapshot);
        tree
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.escaped.is_empty()
    }

    /// Looks again for processes that left the groups, keeping those found before (their
    /// parent may have exited since, which hides them from a new search).
    pub(super) fn refresh(&mut self) {
        self.find_escaped(&snapshot());
    }

    fn find_escaped(&mut self, snapshot: &HashMap<u32, ProcessInfo>) {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, info) in snapshot {
            children.entry(info.parent).or_default().push(pid);
        }
        for &(group, start_time) in &self.groups {
            let Some(leader) = snapshot.get(&group) else {
                continue;
            };
            if leader.start_time != start_time || leader.zombie {
                continue;
            }
            let mut pending = vec![group];
            while let Some(parent) = pending.pop() {
                for &child in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
                    let Some(info) = snapshot.get(&child) else {
                        continue;
                    };
                    if info.session != leader.session {
                        continue;
                    }
                    pending.push(child);
                    let escaped = Escaped {
                        pid: child,
                        start_time: info.start_time,
                        leads_group: info.group == child,
                    };
                    if info.group != group && !info.zombie && !self.escaped.contains(&escaped) {
                        self.escaped.push(escaped);
                    }
                }
            }
        }
    }

    /// Sends `signal` to the groups and to what escaped them.
    pub(super) fn signal(&self, signal: Signal) {
        for &(group, _) in &self.groups {
            if let Ok(group) = i32::try_from(group) {
                let _ = signal_group(Pid::from_raw(group), signal);
            }
        }
        self.signal_escaped(signal);
    }

    /// Sends `signal` to what escaped the groups only, each still the process found.
    pub(super) fn signal_escaped(&self, signal: Signal) {
        for escaped in &self.escaped {
            let Ok(pid) = i32::try_from(escaped.pid) else {
                continue;
            };
            if start_time_of_live(escaped.pid) != Some(escaped.start_time) {
                continue;
            }
            let pid = Pid::from_raw(pid);
            let _ = if escaped.leads_group {
                signal_group(pid, signal)
            } else {
                nix::sys::signal::kill(pid, signal).map_err(io::Error::from)
            };
        }
    }

    /// Whether any of it still runs (zombies do not count).
    pub(super) fn alive(&self) -> bool {
        let snapshot = snapshot();
        let group_alive = |group: u32| {
            snapshot
                .values()
                .any(|info| info.group == group && !info.zombie)
        };
        self.groups.iter().any(|&(group, _)| group_alive(group))
            || self.escaped.iter().any(|escaped| {
                snapshot
                    .get(&escaped.pid)
                    .is_some_and(|info| !info.zombie && info.start_time == escaped.start_time)
                    || (escaped.leads_group && group_alive(escaped.pid))
            })
    }
}
