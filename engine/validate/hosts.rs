//! Hosts, inventory files, `ssh` defaults, rollouts and a step's `on` (SPEC §12): every
//! problem at its file:line:col, an inventory file's in that file.

use std::path::Path;

use super::Diagnostic;
use super::templates::TemplateOwner;
use super::validator::Validator;
use crate::document::{
    self, Amount, OrderedMap, Position, RawHost, RawHosts, RawRollout, RawRunbook, RawStep, Spanned,
};
use crate::model::{Host, HostCount, Placement, Rollout, SshDefaults};
use crate::source::Source;
use crate::suggest::suggest;

/// `[a-z0-9][a-z0-9_.-]*`: host and group names (a host name may be a DNS name).
pub fn is_host_name(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && characters.all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '_' | '.' | '-')
        })
}

const NAME_HELP: &str =
    "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit";

/// A host count or share as written: `3`, `"25%"`.
fn read_amount(text: &str) -> Result<HostCount, String> {
    let text = text.to_string();
    let trimmed = text.trim();
    if let Some(number) = trimmed.strip_suffix('%') {
        return number
            .trim()
            .parse::<u32>()
            .map(HostCount::Percent)
            .map_err(|_| text.clone());
    }
    trimmed
        .parse::<usize>()
        .map(HostCount::Hosts)
        .map_err(|_| text.clone())
}

impl Validator<'_> {
    /// Reads the hosts (the runbook's, its `inventory` file's, then each `--inventory`
    /// file's) and `ssh`, and notes which steps have `on`. Rollouts are read after the steps.
    pub(super) fn inventory(&mut self, raw: &RawRunbook) {
        self.steps_on = raw
            .steps
            .value
            .iter()
            .map(|step| step.on.is_some())
            .collect();
        if let Some(hosts) = &raw.hosts {
            self.add_hosts(&hosts.value, None);
        }
        if let Some(file) = &raw.inventory {
            let path = self.source.directory().join(&file.value);
            self.read_inventory(&path, &file.value, Some(file.position));
        }
        for path in self.host_inputs.inventories.clone() {
            let shown = path.display().to_string();
            self.read_inventory(&path, &shown, None);
        }
        let mut host_vars: Vec<String> = Vec::new();
        for host in &self.inventory.hosts {
            for (name, _) in &host.vars {
                if !host_vars.contains(name) {
                    host_vars.push(name.clone());
                }
            }
        }
        self.host_vars = host_vars;
        let hosts = &self.inventory.hosts;
        self.step_hosts = raw
            .steps
            .value
            .iter()
            .map(|step| {
                let Some(on) = &step.on else {
                    return Vec::new();
                };
                hosts
                    .iter()
                    .filter(|host| {
                        on.value.0.iter().any(|target| {
                            target.value == host.name || host.groups.contains(&target.value)
                        })
                    })
                    .map(|host| host.name.clone())
                    .collect()
            })
            .collect();
        self.check_group_names();
        if let Some(ssh) = &raw.ssh {
            self.inventory.ssh = self.ssh(&ssh.value);
        }
        let uses_hosts = raw.steps.value.iter().any(|step| step.on.is_some());
        if !uses_hosts && let Some(rollout) = &raw.rollout {
            self.push(
                Diagnostic::warning(
                    "rollout-without-on",
                    "`rollout` is set, but no step has `on`: nothing is rolled out",
                    Some(rollout.position),
                )
                .with_help("give the steps to roll out `on: GROUP`"),
            );
        }
    }

    fn read_inventory(&mut self, path: &Path, shown: &str, at: Option<Position>) {
        let source = match Source::read(path) {
            Ok(source) => Source::new(
                source.path().to_path_buf(),
                shown.to_string(),
                source.text().to_string(),
            ),
            Err(error) => {
                let cause = match &error {
                    crate::source::SourceError::Unreadable { cause, .. } => cause.to_string(),
                    other => other.to_string(),
                };
                let message = format!("cannot read inventory `{shown}`: {cause}");
                let help = if at.is_some() {
                    "`inventory` is relative to the runbook's directory"
                } else {
                    "`--inventory` is relative to the current directory"
                };
                self.push(Diagnostic::error("inventory-unreadable", message, at).with_help(help));
                self.inventory_failed = true;
                return;
            }
        };
        match document::parse_inventory(source.text()) {
            Ok(hosts) => {
                self.add_hosts(&hosts, Some(&source));
                self.inventory_sources.push(source);
            }
            Err(error) => {
                self.inventory_failed = true;
                let message = format!("inventory `{shown}` is not valid: {}", error.message);
                let help = error.help.unwrap_or_else(|| {
                    "an inventory maps host names to hosts: `web1: { address: 10.0.0.11, groups: [web] }`".into()
                });
                self.push(
                    Diagnostic::error("invalid-inventory", message, error.position)
                        .with_length(error.length)
                        .with_help(help)
                        .in_file(&source),
                );
            }
        }
    }

    /// Adds hosts written in the runbook (`file` is `None`) or an inventory file.
    fn add_hosts(&mut self, hosts: &RawHosts, file: Option<&Source>) {
        let in_file = |diagnostic: Diagnostic| match file {
            Some(source) => diagnostic.in_file(source),
            None => diagnostic,
        };
        let file_name = file.map_or_else(
            || self.source.name().to_string(),
            |source| source.name().to_string(),
        );
        for (name, host) in hosts.iter() {
            if !is_host_name(&name.value) {
                let message = format!("host name `{}` is not valid", name.value);
                self.push(in_file(
                    Diagnostic::error("invalid-host-name", message, Some(name.position))
                        .with_length(name.value.chars().count())
                        .with_help(NAME_HELP),
                ));
            }
            if let Some(first) = self
                .inventory
                .hosts
                .iter()
                .find(|known| known.name == name.value)
            {
                let message = format!(
                    "host `{}` is defined twice: first at {}:{}:{}",
                    name.value, first.file, first.position.line, first.position.column
                );
                self.push(in_file(
                    Diagnostic::error("duplicate-host", message, Some(name.position))
                        .with_length(name.value.chars().count())
                        .with_help(
                            "each host is defined once, in the runbook or in one inventory file",
                        ),
                ));
                continue;
            }
            let built = self.host(
                &name.value,
                &host.value,
                name.position,
                &file_name,
                &in_file,
            );
            self.inventory.hosts.push(built);
        }
    }

    fn host(
        &mut self,
        name: &str,
        raw: &RawHost,
        position: Position,
        file: &str,
        in_file: &dyn Fn(Diagnostic) -> Diagnostic,
    ) -> Host {
        if raw.address.value.trim().is_empty() {
            let message = format!("host `{name}` has an empty `address`");
            self.push(in_file(Diagnostic::error(
                "invalid-address",
                message,
                Some(raw.address.position),
            )));
        }
        let port = raw
            .port
            .as_ref()
            .and_then(|port| self.port(port, &format!("host `{name}`"), in_file));
        let mut groups = Vec::new();
        for group in raw.groups.iter().flat_map(|groups| &groups.value) {
            if !is_host_name(&group.value) {
                let message = format!("group name `{}` of host `{name}` is not valid", group.value);
                self.push(in_file(
                    Diagnostic::error("invalid-group-name", message, Some(group.position))
                        .with_help(NAME_HELP),
                ));
            }
            if !groups.contains(&group.value) {
                groups.push(group.value.clone());
            }
        }
        let mut vars = Vec::new();
        for (key, value) in raw.vars.iter().flat_map(|vars| vars.value.iter()) {
            if !super::values::is_var_name(&key.value) {
                let message = format!(
                    "`{}` is not a valid name for a var of host `{name}`",
                    key.value
                );
                self.push(in_file(
                    Diagnostic::error("invalid-host-var", message, Some(key.position))
                        .with_help("use letters, digits and `_`, not starting with a digit"),
                ));
            }
            vars.push((key.value.clone(), value.value.0.clone().unwrap_or_default()));
        }
        Host {
            name: name.to_string(),
            address: raw.address.value.trim().to_string(),
            port,
            user: raw.user.as_ref().map(|user| user.value.clone()),
            groups,
            vars,
            identity_file: raw.identity_file.as_ref().map(|file| file.value.clone()),
            file: file.to_string(),
            position,
        }
    }

    fn port(
        &mut self,
        port: &Spanned<i64>,
        owner: &str,
        in_file: &dyn Fn(Diagnostic) -> Diagnostic,
    ) -> Option<u16> {
        match u16::try_from(port.value) {
            Ok(value) if value > 0 => Some(value),
            _ => {
                let message = format!(
                    "`port` of {owner} must be between 1 and 65535, not {}",
                    port.value
                );
                self.push(in_file(Diagnostic::error(
                    "invalid-port",
                    message,
                    Some(port.position),
                )));
                None
            }
        }
    }

    /// A name used both for a host and a group would make `on` ambiguous.
    fn check_group_names(&mut self) {
        let mut problems = Vec::new();
        for host in &self.inventory.hosts {
            if self
                .inventory
                .hosts
                .iter()
                .any(|other| other.groups.contains(&host.name))
            {
                problems.push(host);
            }
        }
        let diagnostics: Vec<Diagnostic> = problems
            .into_iter()
            .map(|host| {
                let message = format!(
                    "`{}` is both a host and a group: `on: {}` would be ambiguous",
                    host.name, host.name
                );
                let diagnostic =
                    Diagnostic::error("host-group-clash", message, Some(host.position))
                        .with_length(host.name.chars().count())
                        .with_help("rename the host or the group");
                match self.other_file(&host.file) {
                    Some(source) => diagnostic.in_file(&source),
                    None => diagnostic,
                }
            })
            .collect();
        for diagnostic in diagnostics {
            self.push(diagnostic);
        }
    }

    /// Whether some step's `on` names `group`.
    fn steps_on_group(&self, group: &str) -> bool {
        self.on_names.iter().any(|name| name == group)
    }

    /// The inventory file named `name`, for diagnostics found after reading it.
    fn other_file(&self, name: &str) -> Option<Source> {
        self.inventory_sources
            .iter()
            .find(|source| source.name() == name)
            .cloned()
    }

    fn ssh(&mut self, raw: &document::RawSsh) -> SshDefaults {
        let keep = |diagnostic: Diagnostic| diagnostic;
        let port = raw
            .port
            .as_ref()
            .and_then(|port| self.port(port, "`ssh`", &keep));
        let connect_timeout = self.duration(raw.connect_timeout.as_ref(), "ssh.connect_timeout");
        let mut options = Vec::new();
        for (key, value) in raw.options.iter().flat_map(|options| options.value.iter()) {
            let valid = !key.value.is_empty()
                && key
                    .value
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric());
            if !valid {
                let message = format!("`{}` is not an OpenSSH option name", key.value);
                self.push(
                    Diagnostic::error("invalid-ssh-option", message, Some(key.position))
                        .with_help("OpenSSH options are words such as `StrictHostKeyChecking` (see `man ssh_config`)"),
                );
            }
            let text = value.value.0.clone().unwrap_or_default();
            if text.contains(['\n', '\0']) {
                let message = format!("ssh option `{}` has a line break in its value", key.value);
                self.push(Diagnostic::error(
                    "invalid-ssh-option",
                    message,
                    Some(value.position),
                ));
            }
            options.push((key.value.clone(), text));
        }
        SshDefaults {
            user: raw.user.as_ref().map(|user| user.value.clone()),
            identity_file: raw.identity_file.as_ref().map(|file| file.value.clone()),
            connect_timeout,
            port,
            options,
        }
    }

    /// `rollout`: each entry names a group with hosts; batch sizes and the failure budget
    /// are counts or shares. Read after the steps, whose outputs `verify` may read.
    pub(super) fn rollouts(&mut self, rollouts: Option<&Spanned<OrderedMap<Spanned<RawRollout>>>>) {
        let Some(rollouts) = rollouts else { return };
        for (group, raw) in rollouts.value.iter() {
            let members = self.inventory.group(&group.value);
            if members.is_empty() && !self.inventory_failed {
                let message = if self.inventory.host(&group.value).is_some() {
                    format!(
                        "`rollout` names `{}`, a host: a rollout is for a group",
                        group.value
                    )
                } else if self.steps_on_group(&group.value) {
                    format!(
                        "`rollout` names group `{}`, which has no hosts",
                        group.value
                    )
                } else {
                    format!("`rollout` names unknown group `{}`", group.value)
                };
                let groups = self.inventory.group_names();
                let help = suggest(&group.value, groups.iter().copied())
                    .map(|best| format!("did you mean `{best}`?"))
                    .unwrap_or_else(|| {
                        if groups.is_empty() {
                            "no host has `groups`: give hosts `groups: [NAME]`".to_string()
                        } else {
                            format!("known groups: {}", groups.join(", "))
                        }
                    });
                self.push(
                    Diagnostic::error("unknown-rollout-group", message, Some(group.position))
                        .with_length(group.value.chars().count())
                        .with_help(help),
                );
            }
            if !members.is_empty()
                && !self.on_names.is_empty()
                && !self.steps_on_group(&group.value)
            {
                let message = format!(
                    "`rollout` has group `{}`, but no step is `on: {}`: nothing is rolled out",
                    group.value, group.value
                );
                self.push(
                    Diagnostic::warning("rollout-unused", message, Some(group.position))
                        .with_length(group.value.chars().count())
                        .with_help("a rollout applies to the steps whose `on` names its group"),
                );
            }
            let place = format!("rollout.{}", group.value);
            let mut batch = Vec::new();
            for size in raw.value.batch.iter().flat_map(|sizes| &sizes.value) {
                if let Some(size) = self.batch_size(size, &place) {
                    batch.push(size);
                }
            }
            if let Some(sizes) = raw
                .value
                .batch
                .as_ref()
                .filter(|sizes| sizes.value.is_empty())
            {
                let message = format!("`{place}.batch` is empty");
                self.push(
                    Diagnostic::error("invalid-batch", message, Some(sizes.position))
                        .with_help("list batch sizes, e.g. `batch: [1, \"50%\"]`"),
                );
            }
            if batch.is_empty() {
                batch.push(HostCount::Hosts(1));
            }
            let max_failed = raw
                .value
                .max_failed
                .as_ref()
                .and_then(|amount| self.failure_budget(amount, &place))
                .unwrap_or(HostCount::Hosts(0));
            let pause_place = format!("{place}.pause");
            let pause = self.duration_value(
                raw.value.pause.as_ref(),
                &pause_place,
                &super::templates::Scope::new(pause_place.clone(), TemplateOwner::Runbook),
            );
            let verify = match &raw.value.verify {
                Some(probes) => self.probes(
                    &probes.value,
                    &format!("{place}.verify"),
                    TemplateOwner::Rollout,
                    None,
                ),
                None => Vec::new(),
            };
            self.inventory.rollouts.push(Rollout {
                group: group.value.clone(),
                batch,
                max_failed,
                pause,
                verify,
                position: group.position,
            });
        }
    }

    fn batch_size(&mut self, size: &Spanned<Amount>, place: &str) -> Option<HostCount> {
        let problem = match read_amount(size.value.0.0.as_deref().unwrap_or_default()) {
            Ok(HostCount::Hosts(0)) => "a batch of 0 hosts never ends the rollout".to_string(),
            Ok(HostCount::Percent(0)) => "a batch of 0% never ends the rollout".to_string(),
            Ok(HostCount::Percent(percent)) if percent > 100 => {
                format!("a batch of {percent}% is over 100% of the group")
            }
            Ok(count) => return Some(count),
            Err(text) => format!("`{text}` is not a host count or a percentage"),
        };
        let message = format!("invalid batch size in `{place}.batch`: {problem}");
        self.push(
            Diagnostic::error("invalid-batch", message, Some(size.position))
                .with_help("a batch is a host count (`2`) or a share of the group (`\"25%\"`), at least 1 host"),
        );
        None
    }

    fn failure_budget(&mut self, amount: &Spanned<Amount>, place: &str) -> Option<HostCount> {
        let problem = match read_amount(amount.value.0.0.as_deref().unwrap_or_default()) {
            Ok(HostCount::Percent(percent)) if percent > 100 => format!("{percent}% is over 100%"),
            Ok(count) => return Some(count),
            Err(text) if text.trim().starts_with('-') => format!("`{text}` is negative"),
            Err(text) => format!("`{text}` is not a host count or a percentage"),
        };
        let message = format!("invalid `{place}.max_failed`: {problem}");
        self.push(
            Diagnostic::error("invalid-max-failed", message, Some(amount.position)).with_help(
                "`max_failed` is a host count (`0`, `1`) or a share of the group (`\"10%\"`)",
            ),
        );
        None
    }

    /// A step's `on`: each name a host or a group; the hosts in inventory order.
    pub(super) fn placement(
        &mut self,
        raw: &RawStep,
        rollout_groups: &[String],
    ) -> Option<Placement> {
        let on = raw.on.as_ref()?;
        if raw.approve.is_some() {
            let message = format!(
                "approval gate `{}` has `on`: a gate asks a person, not a host",
                raw.id.value
            );
            self.push(
                Diagnostic::error("on-approval-gate", message, Some(on.position)).with_help(
                    "remove `on` from the gate; the steps that `need` it can run on hosts",
                ),
            );
        }
        if on.value.0.is_empty() {
            let message = format!("step `{}` has an empty `on`", raw.id.value);
            self.push(
                Diagnostic::error("empty-on", message, Some(on.position)).with_help(
                    "name a host or a group, or remove `on` to run on the engine's machine",
                ),
            );
        }
        let mut selected = vec![false; self.inventory.hosts.len()];
        let mut targets = Vec::new();
        let mut rollout: Option<String> = None;
        self.on_names
            .extend(on.value.0.iter().map(|name| name.value.clone()));
        for name in &on.value.0 {
            let position = self.position_or(name.position, on.position);
            targets.push(name.value.clone());
            if let Some(host) = self.inventory.host(&name.value) {
                selected[host] = true;
                continue;
            }
            let members = self.inventory.group(&name.value);
            if members.is_empty() && self.inventory_failed {
                // The host is most likely in the inventory that could not be read.
                continue;
            }
            if members.is_empty() {
                let hosts: Vec<&str> = self
                    .inventory
                    .hosts
                    .iter()
                    .map(|host| host.name.as_str())
                    .collect();
                let groups = self.inventory.group_names();
                let help = suggest(&name.value, hosts.iter().chain(groups.iter()).copied())
                    .map(|best| format!("did you mean `{best}`?"))
                    .unwrap_or_else(|| {
                        if hosts.is_empty() {
                            "no host is defined: add `hosts:`, `inventory: FILE` or `--inventory FILE`".to_string()
                        } else {
                            format!("hosts: {}; groups: {}", hosts.join(", "), if groups.is_empty() { "none".to_string() } else { groups.join(", ") })
                        }
                    });
                let message = if rollout_groups.contains(&name.value) {
                    format!(
                        "step `{}` is `on` group `{}`, which has no hosts",
                        raw.id.value, name.value
                    )
                } else {
                    format!(
                        "step `{}` is `on` unknown host or group `{}`",
                        raw.id.value, name.value
                    )
                };
                self.push(
                    Diagnostic::error("unknown-host", message, Some(position)).with_help(help),
                );
                continue;
            }
            for member in members {
                selected[member] = true;
            }
            if rollout_groups.contains(&name.value) {
                match &rollout {
                    Some(first) if *first != name.value => {
                        let message = format!(
                            "step `{}` is `on` two rolled-out groups, `{first}` and `{}`",
                            raw.id.value, name.value
                        );
                        self.push(
                            Diagnostic::error("two-rollouts", message, Some(position)).with_help(
                                "a step belongs to one rollout: split it into one step per group",
                            ),
                        );
                    }
                    _ => rollout = Some(name.value.clone()),
                }
            }
        }
        let hosts = selected
            .iter()
            .enumerate()
            .filter(|(_, chosen)| **chosen)
            .map(|(index, _)| index)
            .collect();
        Some(Placement {
            targets,
            hosts,
            rollout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(is_host_name("web1"));
        assert!(is_host_name("db.internal"));
        assert!(is_host_name("edge_2-a"));
        assert!(!is_host_name("Web1"));
        assert!(!is_host_name("-web"));
        assert!(!is_host_name("web 1"));
        assert!(!is_host_name(""));
    }

    #[test]
    fn amounts() {
        let scalar = |text: &'static str| text;
        assert_eq!(read_amount(scalar("3")), Ok(HostCount::Hosts(3)));
        assert_eq!(read_amount(scalar("25%")), Ok(HostCount::Percent(25)));
        assert!(read_amount(scalar("-1")).is_err());
        assert!(read_amount(scalar("1.5")).is_err());
        assert!(read_amount(scalar("many")).is_err());
    }
}
