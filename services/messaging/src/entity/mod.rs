//! Tables of the messaging service (see `migrations/src/messaging`).

pub mod inbox;
pub mod media;
pub mod message;
pub mod opt_out;
pub mod reaction;
pub mod status;
pub mod template;
pub mod window;
