//! The data templates are rendered against (SPEC §6): `vars`, `env`, `runbook`, `run`,
//! `steps`. For a plan, values only a run knows are placeholders and secrets are masked.

use serde_json::{Map, Value, json};

use crate::model::Runbook;
use crate::secrets::MASK;
use crate::state::RunInfo;

/// A template context under construction.
#[derive(Debug, Clone)]
pub struct Context {
    root: Value,
    mask_secrets: bool,
}

/// Marker for contexts built for `plan`: run values are placeholders.
#[derive(Debug, Clone, Copy)]
pub struct PlanPlaceholders;

impl Context {
    /// A plan context: run values are `<run.id>`-style placeholders and secrets are masked.
    pub fn for_plan(runbook: &Runbook, _: PlanPlaceholders) -> Context {
        let run = json!({
            "id": crate::template::PLAN_RUN_ID,
            "started_at": "<run.started_at>",
            "timestamp": "<run.timestamp>",
            "dir": "<run.dir>",
            "status": "<run.status>",
        });
        let mut context = Context::new(runbook, run, true);
        if !runbook.inventory.hosts.is_empty() {
            let mut vars = Map::new();
            for host in &runbook.inventory.hosts {
                for (name, _) in &host.vars {
                    vars.insert(name.clone(), Value::String(format!("<host.vars.{name}>")));
                }
            }
            let host = json!({
                "name": "<host.name>",
                "address": "<host.address>",
                "port": "<host.port>",
                "user": "<host.user>",
                "groups": "<host.groups>",
                "vars": vars,
            });
            context.set_host(host);
        }
        context
    }

    /// Sets `host`, what the templates of an instance read (SPEC §12).
    pub fn set_host(&mut self, host: Value) {
        if let Some(root) = self.root.as_object_mut() {
            root.insert("host".into(), host);
        }
    }

    /// A run context: real values, secrets included (they reach processes only through env).
    pub fn for_run(runbook: &Runbook, run: &RunInfo) -> Context {
        let run = json!({
            "id": run.id,
            "started_at": run.started_at,
            "timestamp": run.timestamp,
            "dir": run.directory.display().to_string(),
            "status": "running",
        });
        Context::new(runbook, run, false)
    }

    /// Records a finished step's status and outputs for the templates of later steps.
    pub fn set_step(&mut self, id: &str, status: &str, outputs: &[(String, String)]) {
        let outputs: Map<String, Value> = outputs
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        if let Some(steps) = self.root.get_mut("steps").and_then(Value::as_object_mut) {
            let value = json!({ "status": status, "outputs": outputs });
            // A module's step `call.step` is read as `steps.<call>.<step>`, an instance
            // `id[item]` of a step with `for_each` as `steps.<id>.items.<item>` (SPEC §13),
            // an instance `id@host` as `steps.<id>.hosts.<host>` (SPEC §12).
            let (id_part, host) = match id.split_once('@') {
                Some((base, host)) => (base, Some(host)),
                None => (id, None),
            };
            let (base, item) = match id_part
                .strip_suffix(']')
                .and_then(|rest| rest.split_once('['))
            {
                Some((base, item)) => (base, Some(item)),
                None => (id_part, None),
            };
            if item.is_some() || host.is_some() || base.contains('.') {
                let mut path: Vec<&str> = base.split('.').collect();
                if let Some(item) = item {
                    path.push("items");
                    path.push(item);
                }
                if let Some(host) = host {
                    path.push("hosts");
                    path.push(host);
                }
                nest(steps, &path, &value);
            }
            steps.insert(id.to_string(), value);
        }
    }

    /// A copy holding only the given steps' values (what one step's templates can read):
    /// copying every finished step's outputs for each step would make long runs quadratic.
    pub fn with_steps(&self, ids: &[String]) -> Context {
        let mut root = Map::new();
        if let Some(object) = self.root.as_object() {
            for (key, value) in object {
                if key != "steps" {
                    root.insert(key.clone(), value.clone());
                }
            }
        }
        let all = self.root.get("steps").and_then(Value::as_object);
        let steps: Map<String, Value> = ids
            .iter()
            .filter_map(|id| Some((id.clone(), all?.get(id)?.clone())))
            .collect();
        root.insert("steps".into(), Value::Object(steps));
        Context {
            root: Value::Object(root),
            mask_secrets: self.mask_secrets,
        }
    }

    /// Makes `steps.<to>` read what `steps.<from>` holds, when it holds anything: an instance
    /// `id@host` reads its own host's instance of a step as `steps.<step>`, and still every
    /// host's as `steps.<step>.hosts.<host>`.
    pub fn alias_step(&mut self, from: &str, to: &str) {
        let Some(steps) = self.root.get_mut("steps").and_then(Value::as_object_mut) else {
            return;
        };
        let Some(value) = steps.get(from).cloned() else {
            return;
        };
        match (steps.get_mut(to).and_then(Value::as_object_mut), value) {
            (Some(existing), Value::Object(fields)) => existing.extend(fields),
            (_, value) => {
                steps.insert(to.to_string(), value);
            }
        }
    }

    /// Makes each `steps.<...>` that holds instances on hosts read host `host`'s instance as
    /// its own (`steps.<id>.items.<item>.outputs` of an instance `id[item]@host`, a module's
    /// `steps.<call>.<step>.outputs`), where nothing of its own is there: an instance on a
    /// host reads its own host's instances of what it names (SPEC §12).
    pub fn lift_host(&mut self, host: &str) {
        if let Some(steps) = self.root.get_mut("steps").and_then(Value::as_object_mut) {
            for value in steps.values_mut() {
                lift(value, host);
            }
        }
    }

    /// Sets `run.status`, for hooks.
    pub fn set_run_status(&mut self, status: &str) {
        if let Some(run) = self.root.get_mut("run").and_then(Value::as_object_mut) {
            run.insert("status".into(), Value::String(status.to_string()));
        }
    }

    fn new(runbook: &Runbook, run: Value, mask_secrets: bool) -> Context {
        let env: Map<String, Value> = std::env::vars_os()
            .filter_map(|(name, value)| {
                Some((
                    name.into_string().ok()?,
                    Value::String(value.into_string().ok()?),
                ))
            })
            .collect();
        let root = json!({
            "vars": {},
            "env": env,
            "runbook": {
                "name": runbook.name,
                "dir": runbook.directory.display().to_string(),
                "description": runbook.description.clone().unwrap_or_default(),
            },
            "run": run,
            "steps": {},
        });
        Context { root, mask_secrets }
    }

    pub fn value(&self) -> &Value {
        &self.root
    }

    /// Adds a resolved variable; an unset one stays absent, so strict rendering names it. A
    /// list var (its value a JSON array text) is an array, for `{{#each}}`.
    pub fn set_var(&mut self, name: &str, value: Option<String>, secret: bool, list: bool) {
        let Some(value) = value else { return };
        let masked = secret && self.mask_secrets;
        let value = if list {
            let items = crate::model::parse_list(&value).unwrap_or_default();
            Value::Array(
                items
                    .into_iter()
                    .map(|item| Value::String(if masked { MASK.to_string() } else { item }))
                    .collect(),
            )
        } else if masked {
            Value::String(MASK.to_string())
        } else {
            Value::String(value)
        };
        if let Some(vars) = self.root.get_mut("vars").and_then(Value::as_object_mut) {
            vars.insert(name.to_string(), value);
        }
    }

    /// Makes `steps.<id>.<...>` paths render as `<steps.<id>.<...>>` placeholders.
    pub fn add_placeholder(&mut self, path: &[String]) {
        if path.first().map(String::as_str) != Some("steps") || path.len() < 3 {
            return;
        }
        let placeholder = Value::String(format!("<{}>", path.join(".")));
        let mut node = &mut self.root;
        for (depth, segment) in path.iter().enumerate() {
            let Some(object) = node.as_object_mut() else {
                return;
            };
            let last = depth == path.len() - 1;
            let entry = object.entry(segment.clone()).or_insert_with(|| {
                if last {
                    placeholder.clone()
                } else {
                    Value::Object(Map::new())
                }
            });
            if last {
                return;
            }
            node = entry;
        }
    }
}

/// Gives `value` and every object under it that has `hosts.<host>` that host's `status` and
/// `outputs`, unless it has its own.
fn lift(value: &mut Value, host: &str) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    let own = object
        .get("hosts")
        .and_then(|hosts| hosts.get(host))
        .and_then(Value::as_object)
        .cloned();
    for (key, child) in object.iter_mut() {
        if key != "hosts" {
            lift(child, host);
        }
    }
    if let Some(own) = own {
        for (key, field) in own {
            object.entry(key).or_insert(field);
        }
    }
}

/// Puts a step's `value` at `path` under `steps`, keeping what is already nested there.
fn nest(steps: &mut Map<String, Value>, path: &[&str], value: &Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let entry = steps
        .entry((*first).to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(object) = entry.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        if let Some(fields) = value.as_object() {
            for (key, field) in fields {
                object.insert(key.clone(), field.clone());
            }
        }
    } else {
        nest(object, rest, value);
    }
}
