//! Lines typed on the terminal for approval gates (`TerminalLines`). One thread reads them for
//! the whole process: a read cannot be cancelled, so a gate answered elsewhere leaves its read
//! to the next question instead of a second reader racing it for the next line. The end of
//! input reads as an empty line (no).
//!
//! A line read before a question is asked was typed for an earlier one (answered elsewhere)
//! and is dropped. The reader starts only once the first question has been asked, after that
//! drop: what was typed ahead of the first question (still in the terminal's buffer) answers
//! it. Started before the drop, the reader could take such a line from the buffer first and
//! have it dropped, at random (a typed-ahead `y` then read as the end of input: no).

use std::io;

use tokio::sync::mpsc;

type Line = io::Result<String>;

/// Reads one line into the buffer, as `BufRead::read_line` does (0: the end of input).
type ReadLine = Box<dyn FnMut(&mut String) -> io::Result<usize> + Send>;

pub(crate) struct TerminalLines {
    receiver: mpsc::UnboundedReceiver<Line>,
    /// The reader and where it sends its lines, until the first question starts it.
    idle: Option<(ReadLine, mpsc::UnboundedSender<Line>)>,
}

impl TerminalLines {
    /// Lines read by `read_line`, once a question is asked.
    pub fn new(read_line: impl FnMut(&mut String) -> io::Result<usize> + Send + 'static) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        TerminalLines {
            receiver,
            idle: Some((Box::new(read_line), sender)),
        }
    }

    /// A question is being asked: the lines read before it are dropped, then the reader runs
    /// (from the first question on).
    pub fn asking(&mut self) {
        while self.receiver.try_recv().is_ok() {}
        if let Some((mut read_line, sender)) = self.idle.take() {
            std::thread::spawn(move || {
                loop {
                    let mut line = String::new();
                    let read = read_line(&mut line);
                    let last = !matches!(read, Ok(count) if count > 0);
                    if sender.send(read.map(|_| line)).is_err() || last {
                        break;
                    }
                }
            });
        }
    }

    /// The next line read; an empty one at the end of input.
    pub async fn next(&mut self) -> Line {
        self.receiver
            .recv()
            .await
            .unwrap_or_else(|| Ok(String::new()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A terminal on which `lines` were typed, each read only once the test lets it
    /// (`allow`), and a count of the reads begun.
    struct Typed {
        lines: Arc<Mutex<VecDeque<&'static str>>>,
        allowed: Arc<(Mutex<usize>, std::sync::Condvar)>,
        reads: Arc<Mutex<usize>>,
    }

    impl Typed {
        fn new(lines: &[&'static str]) -> Typed {
            Typed {
                lines: Arc::new(Mutex::new(lines.iter().copied().collect())),
                allowed: Arc::default(),
                reads: Arc::default(),
            }
        }

        fn reader(&self) -> impl FnMut(&mut String) -> io::Result<usize> + Send + 'static {
            let lines = Arc::clone(&self.lines);
            let allowed = Arc::clone(&self.allowed);
            let reads = Arc::clone(&self.reads);
            move |line: &mut String| {
                *reads.lock().expect("reads") += 1;
                let (count, changed) = &*allowed;
                let mut count = count.lock().expect("the count");
                while *count == 0 {
                    count = changed.wait(count).expect("the count");
                }
                *count -= 1;
                let next = lines.lock().expect("the lines").pop_front().unwrap_or("");
                line.push_str(next);
                Ok(next.len())
            }
        }

        /// Lets the reader take `count` more lines.
        fn allow(&self, count: usize) {
            let (allowed, changed) = &*self.allowed;
            *allowed.lock().expect("the count") += count;
            changed.notify_all();
        }

        fn reads(&self) -> usize {
            *self.reads.lock().expect("reads")
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn nothing_is_read_before_the_first_question_and_a_line_typed_ahead_answers_it() {
        let typed = Typed::new(&["y\n"]);
        typed.allow(1);
        let mut lines = TerminalLines::new(typed.reader());
        // Until the question, the typed line stays on the terminal.
        assert_eq!(typed.reads(), 0);
        lines.asking();
        let answer = runtime().block_on(lines.next()).expect("a line");
        assert_eq!(answer, "y\n");
    }

    #[test]
    fn a_line_read_before_a_later_question_was_for_an_earlier_one() {
        let typed = Typed::new(&["n\n", "stray\n", "y\n"]);
        let mut lines = TerminalLines::new(typed.reader());
        let runtime = runtime();
        lines.asking();
        typed.allow(1);
        assert_eq!(runtime.block_on(lines.next()).expect("a line"), "n\n");
        // The next line comes while no question is asked (the first was answered elsewhere
        // meanwhile, say): it is read (the third read begun: the second one's line was sent),
        // and dropped at the next question.
        typed.allow(1);
        while typed.reads() < 3 {
            std::thread::yield_now();
        }
        lines.asking();
        typed.allow(1);
        assert_eq!(runtime.block_on(lines.next()).expect("a line"), "y\n");
    }

    #[test]
    fn the_end_of_input_reads_as_an_empty_line() {
        let typed = Typed::new(&[]);
        typed.allow(2);
        let mut lines = TerminalLines::new(typed.reader());
        lines.asking();
        let runtime = runtime();
        assert_eq!(runtime.block_on(lines.next()).expect("a line"), "");
        assert_eq!(runtime.block_on(lines.next()).expect("a line"), "");
    }
}
