//! cairn.
