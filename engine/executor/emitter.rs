//! Where the executor's events go: every text is masked before any reporter sees it, and
//! events are made durable in the run's journal (and step output in its log files) before the
//! reporters are told. A journal write that fails is remembered: the dispatcher then starts
//! nothing more (fail closed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::events::{Event, Phase, Stream};
use crate::secrets::Masker;
use crate::state::{
    JournalError, JournalWriter, LogFiles, Record, SyncWait, describe_journal_error,
};

/// A reporter callback shared by the dispatcher and its step tasks.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

/// The run's durable record: journal and log files.
#[derive(Debug)]
pub struct RunRecorder {
    journal: JournalWriter,
    logs: Option<LogFiles>,
    failure: Option<String>,
}

impl RunRecorder {
    pub fn new(journal: JournalWriter, logs: Option<LogFiles>) -> RunRecorder {
        RunRecorder {
            journal,
            logs,
            failure: None,
        }
    }

    fn append(
        &mut self,
        write: impl FnOnce(&mut JournalWriter) -> Result<(), JournalError>,
        durable: bool,
    ) {
        if self.failure.is_some() {
            return;
        }
        let result = write(&mut self.journal)
            .and_then(|()| if durable { self.journal.sync() } else { Ok(()) });
        if let Err(error) = result {
            self.failure = Some(describe_journal_error(&error));
        }
    }

    /// Syncs now, on this thread.
    fn sync_here(&mut self) -> Result<(), String> {
        if self.failure.is_none()
            && let Err(error) = self.journal.sync()
        {
            self.failure = Some(describe_journal_error(&error));
        }
        self.failure.clone().map_or(Ok(()), Err)
    }

    /// Asks the sync thread; `None` when everything is durable already.
    fn sync_in_background(&mut self) -> Result<Option<SyncWait>, String> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.journal.sync_in_background().map_err(|error| {
            let message = describe_journal_error(&error);
            self.failure = Some(message.clone());
            message
        })
    }

    fn log(&mut self, event: &Event) {
        let Some(logs) = self.logs.as_mut() else {
            return;
        };
        let result = match event {
            Event::StepOutput {
                step,
                phase,
                stream,
                line,
            } => {
                let prefix = match (phase, stream) {
                    (Phase::Compensation, Stream::Stdout) => "undo| ",
                    (Phase::Compensation, Stream::Stderr) => "undo! ",
                    (_, Stream::Stdout) => "| ",
                    (_, Stream::Stderr) => "! ",
                };
                logs.line(step, prefix, line)
            }
            Event::StepFinished { step, .. } => logs.finish(step),
            _ => Ok(()),
        };
        if let Err(error) = result {
            // Logs are for people; the journal is the record. A log failure is reported once.
            if self.failure.is_none() {
                self.failure = Some(format!("cannot write the step logs: {error}"));
            }
        }
    }
}

/// Emits events to the journal and the reporters, masking secrets.
#[derive(Clone)]
pub struct Emitter {
    /// Grows during a run: a step's secret outputs join it as soon as they are read.
    masker: Arc<RwLock<Masker>>,
    sink: Arc<Mutex<EventSink>>,
    recorder: Option<Arc<Mutex<RunRecorder>>>,
    /// Step commands running now: while there are some, the journal is synced on its own
    /// thread so that they are not held up (`durable`).
    commands_running: Arc<AtomicUsize>,
}

/// The emitter, with proof that every event emitted before this was made is on disk
/// (`Emitter::durable`): what starts a command takes one, so no command starts before the
/// journal knows. Made right before the start; syncing again in the starter would also wait
/// for what other steps wrote meanwhile, which this start does not depend on.
#[derive(Debug, Clone, Copy)]
#[must_use = "a command starts only once the journal is durable"]
pub struct Durable<'a> {
    emitter: &'a Emitter,
}

impl<'a> Durable<'a> {
    /// The emitter whose journal was synced.
    pub fn emitter(self) -> &'a Emitter {
        self.emitter
    }
}

/// Counts one running command for as long as it lives (`Emitter::command_running`).
#[derive(Debug)]
pub struct CommandRunning(Arc<AtomicUsize>);

impl Drop for CommandRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Emitter")
    }
}

impl Emitter {
    pub fn new(masker: Masker, sink: EventSink, recorder: Option<RunRecorder>) -> Emitter {
        Emitter {
            masker: Arc::new(RwLock::new(masker)),
            sink: Arc::new(Mutex::new(sink)),
            recorder: recorder.map(|recorder| Arc::new(Mutex::new(recorder))),
            commands_running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The masker as it is now (a cheap clone sharing its matcher).
    pub fn masker(&self) -> Masker {
        self.masker
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Masks `values` too from now on, in every event and output line.
    pub fn add_secrets(&self, values: Vec<String>) {
        let values: Vec<String> = values
            .into_iter()
            .filter(|value| !value.is_empty())
            .collect();
        if values.is_empty() {
            return;
        }
        let mut masker = self
            .masker
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *masker = masker.with(values);
    }

    /// Masks free text (messages, rendered commands) before it is put into an event.
    pub fn mask(&self, text: &str) -> String {
        let masker = self.masker();
        if masker.is_empty() {
            text.to_string()
        } else {
            masker.mask_str(text)
        }
    }

    /// Appends a record that is not an event (the journal's header) durably.
    pub fn record(&self, record: &Record) -> Result<(), String> {
        let Some(recorder) = &self.recorder else {
            return Ok(());
        };
        let mut recorder = recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recorder.append(|journal| journal.write(record), true);
        recorder.failure.clone().map_or(Ok(()), Err)
    }

    /// Makes every event so far durable, before an action (starting a command), so that the
    /// journal always knows at least as much as has happened; the `Durable` it returns is
    /// what starting a command takes. While other commands run, the fsync happens on the
    /// journal's sync thread (group commit), so their output and exits are handled meanwhile
    /// and one fsync covers every step that starts or ends in the meantime. With nothing else
    /// running it is done at once, which costs no thread switch.
    pub async fn durable(&self) -> Result<Durable<'_>, String> {
        let Some(recorder) = &self.recorder else {
            return Ok(Durable { emitter: self });
        };
        let lock = || {
            recorder
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let wait = {
            let mut recorder = lock();
            if self.commands_running.load(Ordering::Relaxed) == 0 {
                return recorder.sync_here().map(|()| Durable { emitter: self });
            }
            match recorder.sync_in_background()? {
                Some(wait) => wait,
                None => return Ok(Durable { emitter: self }),
            }
        };
        let result = wait.finish().await;
        let mut recorder = lock();
        match result {
            Ok(sequence) => recorder.journal.synced_through(sequence),
            Err(message) => {
                recorder.failure.get_or_insert(message);
            }
        }
        recorder
            .failure
            .clone()
            .map_or(Ok(Durable { emitter: self }), Err)
    }

    /// Marks a command as running until the result is dropped (see `durable`).
    pub fn command_running(&self) -> CommandRunning {
        self.commands_running.fetch_add(1, Ordering::Relaxed);
        CommandRunning(Arc::clone(&self.commands_running))
    }

    /// Why the journal can no longer be written, if it cannot.
    pub fn journal_failure(&self) -> Option<String> {
        let recorder = self.recorder.as_ref()?;
        let recorder = recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recorder.failure.clone()
    }

    /// Journals (durably) and then reports an event whose texts are already masked.
    pub fn emit(&self, event: Event) {
        if let Some(recorder) = &self.recorder {
            let mut recorder = recorder
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            recorder.log(&event);
            // Output lines go to the logs only: the journal stays small whatever a step prints.
            if !matches!(event, Event::StepOutput { .. }) {
                // The end of a run is synced at once; everything else at the next action.
                let finished = matches!(event, Event::RunFinished { .. });
                let durable = finished || matches!(event, Event::RunStarted { .. });
                recorder.append(|journal| journal.write_event(&event), durable);
                if finished {
                    // Harmless if it fails: readers skip the blank lines written ahead.
                    let _ = recorder.journal.trim();
                }
            }
        }
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sink(&event);
    }
}
