//! The `herald` binary's library half: configuration and the glue that starts a server
//! (store, engine, API) so that integration tests can run the real thing in-process on
//! port 0.

pub mod cli;
pub mod config;
mod http_errors;
pub mod keys;
pub mod rotate;
pub mod server;
