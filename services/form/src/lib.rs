//! The form service: campaigns' versioned WhatsApp forms, the agents' drafts,
//! validation, and the submitted values.

mod app;
mod convert;
pub mod definition;
pub mod draft;
mod entity;
pub mod error;
mod grpc;
mod seed;
pub mod store;
pub mod value;

pub use app::Application;
