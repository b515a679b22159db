//! The queue service: owns campaigns, business numbers, agents and attentions,
//! routes attentions to agents (queued → offered → open → finished, with
//! transfers and re-queues), and hands finished ones to history.

mod admin;
mod app;
mod attention;
mod clients;
pub mod demo;
mod dialer;
mod dialing;
mod entity;
mod error;
mod feed;
mod gauges;
mod grpc;
mod handoff;
mod hours;
mod outbound;
mod presence;
mod privacy;
mod queue;
mod roster;
mod routing;
mod snapshot;
mod transfer;

pub use app::Application;
pub use error::Error;
