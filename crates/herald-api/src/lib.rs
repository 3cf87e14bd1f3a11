//! Herald's management API: the Svix-compatible v1 routes. This is the only crate that
//! knows status codes and JSON shapes. It does not know the delivery engine: deliveries
//! committed by a request are passed to the `HandOff` the binary supplies.

mod audit;
mod broker_config;
pub mod by_environment;
mod contract;
mod destination;
pub mod dto;
pub mod error;
pub mod extract;
mod idempotency;
mod inbound;
pub mod listen;
mod openapi;
mod roles;
mod router;
mod routes;
mod state;
pub mod ui;

pub use router::{health_router, openapi_json, router};
pub use routes::sso::OidcConfig;
pub use state::{ApiConfig, ApiState, Caller, DiskProbe, HandOff, CACHED_APP_KEPT};
