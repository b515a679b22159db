//! The gateway: the one API the agent screen calls. It verifies the caller's
//! credential and fans each request out to the queue, messaging, form and
//! history services.

mod admin;
mod app;
pub mod auth;
pub mod authorize;
mod deadline;
mod desk;
mod error;
mod live;
mod membership;
mod outbound;
mod pipeline;

pub use app::Application;
