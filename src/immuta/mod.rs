//! Immuta's agent on-behalf-of (OBO) API: wire shapes and the client.

pub mod client;
pub mod wire;

pub use client::{ImmutaClient, ImmutaError, VendedAccess};
