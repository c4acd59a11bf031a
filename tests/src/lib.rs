//! Whole-system test crate: its tests live under `tests/tests/`.
#![forbid(unsafe_code)]
