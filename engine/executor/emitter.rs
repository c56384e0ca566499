//! Where the executor's events go: every text is masked here, once, before any reporter sees
//! it, so no sink can leak a secret.

use std::sync::{Arc, Mutex};

use crate::events::Event;
use crate::secrets::Masker;

/// A reporter callback shared by the dispatcher and its step tasks.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

/// Emits events to the reporters, masking secrets.
#[derive(Clone)]
pub struct Emitter {
    masker: Masker,
    sink: Arc<Mutex<EventSink>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Emitter")
    }
}

impl Emitter {
    pub fn new(masker: Masker, sink: EventSink) -> Emitter {
        Emitter {
            masker,
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Masks free text (messages, rendered commands) before it is put into an event.
    pub fn mask(&self, text: &str) -> String {
        if self.masker.is_empty() {
            text.to_string()
        } else {
            self.masker.mask_str(text)
        }
    }

    /// Sends an event whose texts are already masked.
    pub fn emit(&self, event: Event) {
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sink(&event);
    }
}
