//! Immuta's agent on-behalf-of (OBO) API, laid out as the platform paths
//! are: [`wire`] (request and answer shapes), [`client`] (vend, poll, drop
//! roles) and [`errors`] ([`ImmutaError`]).

pub mod client;
pub mod errors;
pub mod wire;

pub use client::{ImmutaClient, VendedAccess};
pub use errors::ImmutaError;
