//! Hooks (SPEC §8.8): commands at the start and the end of a run. A failing hook is
//! reported and changes nothing else.

use std::time::Duration;

use tokio::sync::watch;

use super::command::{CancelLevel, OutputLabel, run_command};
use super::shared::{Renderer, RunShared};
use crate::events::{Event, Phase};
use crate::model::Hook;
use crate::plan::Context;
use crate::process::CommandSpec;

const HOOK_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_SHELL: [&str; 6] = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"];

pub(crate) async fn run_hooks(shared: &RunShared, hooks: &[Hook], moment: &str, context: &Context) {
    let (_never, mut cancel) = watch::channel(CancelLevel::None);
    for (index, hook) in hooks.iter().enumerate() {
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
                shared.emitter.emit(Event::Notice {
                    message: format!("hook `{}` failed: {message}", hook.name),
                });
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
        let result = run_command(
            &spec,
            &label,
            Some(timeout),
            HOOK_GRACE,
            &shared.emitter,
            &mut cancel,
            None,
        )
        .await;
        if !result.end.succeeded() {
            shared.emitter.emit(Event::Notice {
                message: format!("hook `{}` failed: {}", hook.name, result.end.describe()),
            });
        }
    }
}
