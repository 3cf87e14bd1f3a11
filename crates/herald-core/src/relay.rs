//! The contract between the delivery engine and `herald listen` sessions. An endpoint
//! whose URL starts with [`SCHEME`] is not called over HTTP: its deliveries, signed as
//! usual, are handed to a [`Relay`], which streams them to the connected CLI and returns
//! what the developer's local app answered. Attempts, retries and logs are the engine's
//! as for any endpoint, so a delivery made while the CLI or the local app is down is
//! retried and can be replayed.

use std::future::Future;
use std::pin::Pin;

/// URL scheme of endpoints served by a listen session: `herald-listen:{session}`.
pub const SCHEME: &str = "herald-listen:";

/// One signed delivery for a listen session.
#[derive(Clone, Debug)]
pub struct RelayRequest {
    pub endpoint_id: String,
    pub msg_id: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What the local app answered (status 0: it could not be reached).
#[derive(Clone, Debug)]
pub struct RelayResponse {
    pub status: u16,
    pub body: String,
}

pub type RelayFuture = Pin<Box<dyn Future<Output = Result<RelayResponse, String>> + Send>>;

/// Hands deliveries to listen sessions; `Err` says why it could not (no session).
pub trait Relay: Send + Sync + std::fmt::Debug {
    fn relay(&self, request: RelayRequest) -> RelayFuture;
}
