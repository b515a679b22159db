//! The messaging service: the WhatsApp Cloud API adapter. Receives the
//! webhooks (HTTP), stores every message and delivery status, routes customer
//! messages to the queue service, and sends the business's messages through a
//! durable, paced, retried pipeline within WhatsApp's 24-hour window (gRPC).

mod app;
mod consent;
mod content;
mod domain;
mod entity;
mod error;
mod graph;
mod grpc;
mod media;
mod messaging;
mod notification;
mod outbound;
mod processor;
mod proto;
mod purge;
mod sender;
pub mod signature;
mod store;
mod template;
mod webhook;
mod window;
mod window_watch;

#[cfg(test)]
mod testkit;

pub use app::Application;
pub use error::Error;
pub use webhook::PATH as WEBHOOK_PATH;
