//! Hooks (SPEC §8.8): commands at the start and the end of a run. A failing hook is
//! reported and changes nothing else. A signal while a hook runs is honoured: the hook is
//! stopped (SIGTERM, a short grace, SIGKILL), no further hook of the list starts, and the
//! caller learns which signal it was, to end the run with its exit code.

use std::time::Duration;

use tokio::sync::watch;

use super::command::{CancelLevel, CommandEnd, OutputLabel, run_command};
use super::shared::{Renderer, RunShared};
use super::signals::Signals;
use crate::events::{Event, Phase};
use crate::model::Hook;
use crate::plan::Context;
use crate::process::CommandSpec;

const HOOK_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_SHELL: [&str; 6] = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"];

/// Runs `hooks` in order; returns the signal that stopped them, if one did.
pub(crate) async fn run_hooks(
    shared: &RunShared,
    hooks: &[Hook],
    moment: &str,
    context: &Context,
    signals: &mut Signals,
) -> Option<&'static str> {
    let (stop, mut cancel) = watch::channel(CancelLevel::None);
    let mut received = None;
    for (index, hook) in hooks.iter().enumerate() {
        if received.is_some() {
            break;
        }
        let label = OutputLabel {
            step: format!("hooks.{moment}[{index}]"),
            phase: Phase::Hook,
            emit_lines: true,
        };
        let prepared = Renderer::new(shared, context).and_then(|renderer| {
            let mut env = shared.base_env.clone();
            env.extend(renderer.render_env(&hook.env)?);
            Ok((
                renderer.render(&hook.run)?,
                env,
                renderer.duration(&hook.timeout)?,
            ))
        });
        let (script, env, timeout) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                report_failure(shared, hook, &message);
                continue;
            }
        };
        let mut argv: Vec<String> = DEFAULT_SHELL.iter().map(|word| word.to_string()).collect();
        argv.push(script);
        let spec = CommandSpec {
            argv,
            env,
            cwd: shared.runbook.directory.clone(),
        };
        let durable = match shared.emitter.durable().await {
            Ok(durable) => durable,
            Err(message) => {
                report_failure(shared, hook, &CommandEnd::SpawnFailed(message).describe());
                continue;
            }
        };
        let command = run_command(
            &spec,
            &label,
            Some(timeout),
            HOOK_GRACE,
            durable,
            &mut cancel,
            None,
        );
        tokio::pin!(command);
        let result = loop {
            tokio::select! {
                result = &mut command => break result,
                name = signals.next(), if received.is_none() => {
                    shared.emitter.emit(Event::Notice {
                        message: format!("{name} received while hook `{}` ran: stopping the hooks", hook.name),
                    });
                    received = Some(name);
                    let _ = stop.send(CancelLevel::Graceful);
                }
            }
        };
        if received.is_some() {
            break;
        }
        if !result.end.succeeded() {
            report_failure(shared, hook, &result.end.describe());
        }
    }
    received
}

/// A failing hook is reported and changes nothing else (SPEC §8.8).
fn report_failure(shared: &RunShared, hook: &Hook, why: &str) {
    shared.emitter.emit(Event::Notice {
        message: format!("hook `{}` failed: {why}", hook.name),
    });
}
