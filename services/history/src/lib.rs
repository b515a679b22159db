//! The history service: the record of every finished attention (historial) —
//! who, when, the full transcript and the submitted form — the lifecycle of
//! every attention for reports, and the privacy rules over both.

pub mod activity;
mod app;
mod convert;
mod entity;
pub mod error;
mod grpc;
pub mod page;
pub mod privacy;
pub mod record;
pub mod report;
pub mod search;
pub mod store;

pub use app::Application;
