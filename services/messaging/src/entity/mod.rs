//! Tables of the messaging service (see `migrations/src/messaging`).

pub mod inbox;
pub mod message;
pub mod status;
pub mod window;
