//! The history service: the record of every finished attention (historial) —
//! who, when, the full transcript and the submitted form.

mod app;
mod convert;
mod entity;
pub mod error;
mod grpc;
pub mod page;
pub mod record;
pub mod search;
pub mod store;

pub use app::Application;
