//! The command-line client half of `herald`: `herald listen` and the API commands.

pub mod client;
pub mod commands;
pub mod listen;
