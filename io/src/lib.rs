//! cairn-io: the generic IO shell.
