//! cairn-bench: shared helpers for the criterion benches in `benches/`.
