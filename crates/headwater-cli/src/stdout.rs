//! Standard output that a reader may close: `headwater send … | head -1` must not turn
//! a finished delivery into a panic (`println!` panics on a closed pipe, exit 101).

use std::io::{ErrorKind, Write};

/// Writes `text` to standard output. A reader that went away (a closed pipe) is not an
/// error of the run: the text is dropped and the run's exit code stands. Any other
/// failure to write is reported on standard error.
pub(crate) fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::BrokenPipe => {}
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "warning: cannot write to standard output: {error}"
            );
        }
    }
}
