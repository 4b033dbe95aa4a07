//! cairn-storage: durable bytes.
