//! `runbook plan`: the dry run, printed as text, JSON, Mermaid or DOT.

use std::io::{BufWriter, Write};

use super::args::{GlobalArgs, PlanArgs, PlanFormat, VarArgs};
use super::load::{Loaded, load, mask};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::plan::{to_dot, to_mermaid, write_text};
use crate::secrets::{Masker, MaskingStream};

pub fn plan(args: &PlanArgs, global: &GlobalArgs) -> i32 {
    print_plan(
        &args.file,
        &args.vars,
        args.format,
        args.all_warnings,
        global,
    )
}

/// Prints the plan of a runbook; shared with `run --dry-run`.
pub fn print_plan(
    file: &std::path::Path,
    vars: &VarArgs,
    format: PlanFormat,
    all_warnings: bool,
    global: &GlobalArgs,
) -> i32 {
    let loaded = match load(file, vars, all_warnings, global) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let output = match format {
        PlanFormat::Text => return print_text(&loaded),
        PlanFormat::Json => return print_json(&loaded),
        PlanFormat::Mermaid => to_mermaid(&loaded.plan),
        PlanFormat::Dot => to_dot(&loaded.plan),
    };
    out!("{}", mask(output, &loaded.output_secrets()));
    EXIT_SUCCESS
}

/// Streams the text to stdout as it is written rather than building it first (close to a
/// megabyte for a 10,000-step plan), masked on the way like the JSON.
fn print_text(loaded: &Loaded) -> i32 {
    let masker = Masker::new(loaded.output_secrets());
    let masking = MaskingWriter {
        stream: (!masker.is_empty()).then(|| masker.stream()),
        inner: std::io::stdout().lock(),
    };
    let mut writer = TextWriter {
        inner: BufWriter::with_capacity(1 << 16, masking),
        error: None,
    };
    write_text(&mut writer, &loaded.plan);
    let TextWriter { inner, error } = writer;
    super::output::note_stdout(match error {
        Some(error) => Err(error),
        None => inner
            .into_inner()
            .map_err(|error| error.into_error())
            .and_then(MaskingWriter::finish),
    });
    EXIT_SUCCESS
}

/// Text written to a byte stream; the first write error is kept and ends the writing.
struct TextWriter<W: Write> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Write for TextWriter<W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        if self.error.is_some() {
            return Err(std::fmt::Error);
        }
        self.inner.write_all(text.as_bytes()).map_err(|error| {
            self.error = Some(error);
            std::fmt::Error
        })
    }
}

/// Streams the JSON to stdout rather than building it: for a 10,000-step plan it is 15 MB.
/// A write error is remembered as for every other output (a closed pipe is not one).
fn print_json(loaded: &Loaded) -> i32 {
    let masker = Masker::new(loaded.output_secrets());
    let masking = MaskingWriter {
        stream: (!masker.is_empty()).then(|| masker.stream()),
        inner: std::io::stdout().lock(),
    };
    // Large chunks: serde writes a few bytes at a time, and stdout's own buffer writes out
    // at every newline, of which pretty JSON has many.
    let mut writer = BufWriter::with_capacity(1 << 16, masking);
    match serde_json::to_writer_pretty(&mut writer, &loaded.plan) {
        Ok(()) => {
            super::output::note_stdout(
                writer
                    .write_all(b"\n")
                    .and_then(|()| writer.into_inner().map_err(|error| error.into_error()))
                    .and_then(MaskingWriter::finish),
            );
            EXIT_SUCCESS
        }
        Err(error) if error.is_io() => {
            super::output::note_stdout(Err(error.into()));
            EXIT_SUCCESS
        }
        Err(error) => {
            errln!("error: cannot serialize the plan: {error}");
            EXIT_INVALID
        }
    }
}

/// Masks secret values on the way through, holding back only what may begin one.
struct MaskingWriter<W: Write> {
    stream: Option<MaskingStream>,
    inner: W,
}

impl<W: Write> MaskingWriter<W> {
    fn finish(mut self) -> std::io::Result<()> {
        if let Some(stream) = self.stream.take() {
            self.inner.write_all(&stream.finish())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match &mut self.stream {
            Some(stream) => self.inner.write_all(&stream.push(bytes))?,
            None => self.inner.write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
