//! A step's output as it arrives (`OutputChunk`), and the task that moves it from one pipe to the
//! executor's channel.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Bytes as read from one pipe: not split at lines, not necessarily UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: OutputStream,
    pub bytes: Vec<u8>,
}

const READ_BUFFER: usize = 64 * 1024;

/// After the stop, this much more is still read at most: enough to empty a full pipe (1 MiB is
/// Linux's default `pipe-max-size`), bounded for a detached process that never stops writing.
const AFTER_STOP_BUDGET: usize = 1024 * 1024;

/// Copies `pipe` into `output` until end of file, or until `stop` is set and the pipe has
/// nothing more to give at once; the stop also comes when its sender is dropped.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    stream: OutputStream,
    output: mpsc::Sender<OutputChunk>,
    mut stop: watch::Receiver<bool>,
) {
    // Not zeroed (`read_buf` fills spare capacity): most steps print little or nothing, and
    // zeroing 64 KiB for each of two pipes was a visible part of a step's cost.
    let mut buffer = Vec::with_capacity(READ_BUFFER);
    let mut read_after_stop = 0;
    loop {
        buffer.clear();
        let read = tokio::select! {
            // Reading first, so the stop ends only the wait for more, never data already in
            // the pipe.
            biased;
            read = pipe.read_buf(&mut buffer) => read,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let length = match read {
            Ok(0) => return,
            Ok(length) => length,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let chunk = OutputChunk {
            stream,
            bytes: buffer[..length].to_vec(),
        };
        // A slow receiver pauses the reading here and, once the pipe is full, the writer.
        if output.send(chunk).await.is_err() {
            return;
        }
        if *stop.borrow() {
            read_after_stop += length;
            if read_after_stop >= AFTER_STOP_BUDGET {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn stop_ends_the_wait_but_delivers_what_was_written() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let (output, mut chunks) = mpsc::channel(4);
        let (stop, stopped) = watch::channel(false);
        writer
            .write_all(b"before")
            .await
            .expect("write to the pipe");
        stop.send_replace(true);
        // The writer stays open, as a detached process would keep it.
        pump(reader, OutputStream::Stderr, output, stopped).await;
        let chunk = chunks.recv().await.expect("the written bytes arrive");
        assert_eq!(
            chunk,
            OutputChunk {
                stream: OutputStream::Stderr,
                bytes: b"before".to_vec()
            }
        );
        assert!(chunks.recv().await.is_none());
        drop(writer);
    }

    #[tokio::test]
    async fn dropped_receiver_ends_the_pump() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let (output, chunks) = mpsc::channel(1);
        let (_stop, stopped) = watch::channel(false);
        drop(chunks);
        writer
            .write_all(b"nobody listens")
            .await
            .expect("write to the pipe");
        pump(reader, OutputStream::Stdout, output, stopped).await;
    }
}
