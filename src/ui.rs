//! Writing to the user: `output` to stdout, `error` to stderr, one line each. Write errors (a
//! closed pipe) are ignored: there is nobody left to tell.

use std::io::Write;

/// Prints a line to stdout.
pub fn output(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.write_all(b"\n");
}

/// Prints a line to stderr.
pub fn error(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.write_all(b"\n");
}
