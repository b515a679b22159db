//! The messaging service: the WhatsApp Cloud API adapter. Receives the
//! webhooks (HTTP), stores every message and delivery status, routes customer
//! messages to the queue service, and sends the business's texts (gRPC).

mod app;
mod content;
mod domain;
mod entity;
mod error;
mod graph;
mod grpc;
mod media;
mod messaging;
mod notification;
mod processor;
mod proto;
pub mod signature;
mod store;
mod webhook;

#[cfg(test)]
mod testkit;

pub use app::Application;
pub use error::Error;
pub use webhook::PATH as WEBHOOK_PATH;
