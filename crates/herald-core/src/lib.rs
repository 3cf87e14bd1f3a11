//! Herald's domain rules, free of I/O: identifiers, time, secrets and signing, the retry
//! policy, fan-out matching and field validation. Nothing here knows about SQL, HTTP
//! frameworks or tokio, so every rule can be unit-tested directly.

pub mod environment;
pub mod fanout;
pub mod filter;
pub mod ids;
pub mod inbound;
pub mod metrics;
pub mod netguard;
pub mod oidc;
pub mod password;
pub mod relay;
pub mod retry;
pub mod sealing;
pub mod secret;
pub mod signing;
pub mod text;
pub mod time;
pub mod token;
pub mod totp;
pub mod trace;
pub mod validate;
