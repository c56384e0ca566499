//! Runs a list of probes for a step, a compensation or `rollback_verify`: renders each into
//! a request, runs it, reports it; the first failing probe ends the list.

use std::time::Duration;

use tokio::sync::watch;

use super::command::CancelLevel;
use super::probe::{ProbeRequest, RenderedExpectation, RenderedHttp, RenderedProbeKind, run_probe};
use super::shared::{Renderer, RunShared};
use crate::events::{Event, Phase};
use crate::model::{NumberCheck, Probe, ProbeKind, ProbeTiming, Template};

/// Renders a probe's templates into a request the probe runner can execute.
fn render_probe(
    probe: &Probe,
    renderer: &Renderer<'_>,
    env: &[(String, String)],
    shared: &RunShared,
    on_host: Option<usize>,
) -> Result<ProbeRequest, String> {
    let kind = match &probe.kind {
        ProbeKind::Command {
            run,
            shell,
            env: probe_env,
            timeout,
            expect,
        } => {
            let mut argv = renderer.render_all(shell)?;
            argv.push(renderer.render(run)?);
            let mut all_env = env.to_vec();
            all_env.extend(renderer.render_env(probe_env)?);
            let optional = |template: &Option<crate::model::Template>| {
                template
                    .as_ref()
                    .map(|template| renderer.render(template))
                    .transpose()
            };
            RenderedProbeKind::Command {
                argv,
                env: all_env,
                cwd: shared.runbook.directory.clone(),
                timeout: *timeout,
                on_host: on_host.and_then(|host| Some(shared.fleet.as_ref()?.probe_host(host))),
                expect: RenderedExpectation {
                    exit_code: expect.exit_code,
                    stdout_contains: optional(&expect.stdout_contains)?,
                    stdout_not_contains: optional(&expect.stdout_not_contains)?,
                    stdout_matches: optional(&expect.stdout_matches)?,
                    stdout_number: match &expect.stdout_number_template {
                        Some(template) => {
                            let text = renderer.render(template)?;
                            Some(NumberCheck::parse(&text).ok_or_else(|| {
                                format!(
                                    "`{}` renders to `{text}`, not a comparison like `< 5`",
                                    template.place
                                )
                            })?)
                        }
                        None => expect.stdout_number,
                    },
                },
            }
        }
        ProbeKind::Http(http) => {
            let optional = |template: &Option<crate::model::Template>| {
                template
                    .as_ref()
                    .map(|template| renderer.render(template))
                    .transpose()
            };
            RenderedProbeKind::Http(RenderedHttp {
                url: renderer.render(&http.url)?,
                method: http.method.clone(),
                headers: renderer.render_env(&http.headers)?,
                body: optional(&http.body)?,
                status: http.status.clone(),
                body_contains: optional(&http.body_contains)?,
                body_matches: optional(&http.body_matches)?,
                body_json: http
                    .body_json
                    .iter()
                    .map(|(path, value)| Ok((path.clone(), renderer.render(value)?)))
                    .collect::<Result<_, String>>()?,
                max_latency: http.max_latency,
                timeout: http.timeout,
                ca_file: optional(&http.ca_file)?
                    .map(|path| shared.runbook.directory.join(path.trim())),
                insecure: http.insecure,
                follow_redirects: http.follow_redirects,
            })
        }
        ProbeKind::Tcp { address } => RenderedProbeKind::Tcp {
            address: renderer.render(address)?,
        },
    };
    let name = match &probe.name_template {
        Some(template) => renderer.render(template)?.trim().to_string(),
        None => probe.name.clone(),
    };
    Ok(ProbeRequest {
        name,
        kind,
        timing: rendered_timing(probe, renderer)?,
    })
}

/// The probe's timing with its templated values rendered and parsed.
fn rendered_timing(probe: &Probe, renderer: &Renderer<'_>) -> Result<ProbeTiming, String> {
    let duration = |template: &Template| -> Result<Duration, String> {
        crate::model::parse_rendered(template, &renderer.render(template)?)
    };
    let mut timing = probe.timing.clone();
    let templates = &probe.timing_templates;
    if let Some(template) = &templates.within {
        timing.within = Some(duration(template)?);
    }
    if let Some(template) = &templates.hold {
        timing.hold = Some(duration(template)?);
    }
    if let Some(template) = &templates.interval {
        timing.interval = duration(template)?.max(Duration::from_millis(1));
    }
    Ok(timing)
}

/// Why verification failed: a probe failed, or a probe's template could not be rendered
/// (a problem of the runbook, not of the system it checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifyError {
    pub message: String,
    pub template: bool,
}

/// Runs `probes` in order; returns the failure of the first that fails.
/// `run` probes of an instance `id@host` run on its host (SPEC §12).
pub(crate) async fn verify(
    probes: &[Probe],
    step: &str,
    phase: Phase,
    renderer: &Renderer<'_>,
    env: &[(String, String)],
    shared: &RunShared,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> Result<(), VerifyError> {
    let on_host = shared.fleet.as_ref().and_then(|fleet| {
        let index = shared.runbook.step(step)?.index;
        fleet.host_of(index)
    });
    let place = ProbePlace { step, on_host };
    verify_on(probes, place, phase, renderer, env, shared, cancel).await
}

/// What probes are run for, and where their `run` probes run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbePlace<'a> {
    /// The id events name.
    pub step: &'a str,
    /// The inventory host `run` probes run on; `None`: the engine's machine.
    pub on_host: Option<usize>,
}

/// Runs `probes` in order, `run` probes on `place.on_host`; returns the failure of the
/// first that fails.
pub(crate) async fn verify_on(
    probes: &[Probe],
    place: ProbePlace<'_>,
    phase: Phase,
    renderer: &Renderer<'_>,
    env: &[(String, String)],
    shared: &RunShared,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> Result<(), VerifyError> {
    let step = place.step;
    for probe in probes {
        let request =
            render_probe(probe, renderer, env, shared, place.on_host).map_err(|message| {
                VerifyError {
                    message,
                    template: true,
                }
            })?;
        let (probe_cancel, mut probe_cancelled) =
            watch::channel(*cancel.borrow() != CancelLevel::None);
        let running = run_probe(&request, &mut probe_cancelled);
        tokio::pin!(running);
        let outcome = loop {
            tokio::select! {
                outcome = &mut running => break outcome,
                changed = cancel.changed() => {
                    if changed.is_err() {
                        break running.await;
                    }
                    if *cancel.borrow() != CancelLevel::None {
                        let _ = probe_cancel.send(true);
                    }
                }
            }
        };
        let message = shared.emitter.mask(&outcome.message);
        shared.emitter.emit(Event::ProbeFinished {
            step: step.to_string(),
            phase,
            probe: request.name.clone(),
            passed: outcome.passed,
            samples: outcome.samples,
            message: message.clone(),
        });
        if !outcome.passed {
            return Err(VerifyError {
                message: format!("probe `{}` failed: {message}", request.name),
                template: false,
            });
        }
    }
    Ok(())
}
