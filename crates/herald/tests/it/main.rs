//! Integration tests: the real server on port 0 with a fresh data directory, driven over
//! real HTTP, delivering to real HTTP receivers on loopback.

mod destinations;
mod environments;
mod fairness;
mod filters;
mod hardening;
mod helpers;
mod inbound;
mod isolation;
mod limits;
mod listen;
mod observability;
mod operational;
mod people;
mod pg;
mod readme;

mod api;
mod audit;
mod broker_destinations;
mod cli;
mod cluster;
mod crash;
mod delivery;
mod replay;
mod roles;
mod scoped;
mod sdk;
mod secrets;
mod shutdown;
mod ssrf;
mod transformations;
mod ui;
