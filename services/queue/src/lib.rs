//! The queue service: owns campaigns, business numbers, agents and attentions,
//! moves attentions through queued → open → finished, and hands finished ones
//! to history.

mod admin;
mod app;
mod attention;
mod clients;
pub mod demo;
mod entity;
mod error;
mod grpc;
mod handoff;
mod presence;
mod queue;

pub use app::Application;
pub use error::Error;
