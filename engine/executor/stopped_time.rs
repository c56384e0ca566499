//! Time the engine spent stopped (SIGSTOP, Ctrl-Z), so that step timeouts measure the step's
//! time, not the engine's absence, as nextest pauses its timers. A stop cannot be caught, but
//! it shows afterwards: a thread that wakes every `TICK` finds a gap far longer than that.
//! `stopped_total` settles a gap itself before answering, so a deadline that fires on
//! continuing already sees the time it must add.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(50);
/// A gap longer than this between two ticks was a stop (a loaded machine delays a 50 ms sleep
/// by far less).
const STOP_GAP: Duration = Duration::from_millis(500);

struct Clock {
    last_tick: Instant,
    stopped: Duration,
}

fn clock() -> &'static Mutex<Clock> {
    static CLOCK: OnceLock<Mutex<Clock>> = OnceLock::new();
    CLOCK.get_or_init(|| {
        std::thread::Builder::new()
            .name("stopped-time".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    settle();
                }
            })
            .ok();
        Mutex::new(Clock {
            last_tick: Instant::now(),
            stopped: Duration::ZERO,
        })
    })
}

/// Counts the gap since the last tick as stopped time if it was one, and starts a new tick.
fn settle() -> Duration {
    let mut clock = clock()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    let gap = now.saturating_duration_since(clock.last_tick);
    if gap > STOP_GAP {
        clock.stopped += gap.saturating_sub(TICK);
    }
    clock.last_tick = now;
    clock.stopped
}

/// All the time the engine has spent stopped so far (it only grows).
pub(crate) fn stopped_total() -> Duration {
    settle()
}
