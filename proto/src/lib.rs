//! The gRPC contract of atenciones, compiled once for every crate.
//!
//! Each module mirrors a proto package (`atenciones.queue.v1` → [`queue::v1`]).

/// Encoded file descriptors of every package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/atenciones_descriptor.bin"));

pub mod acting;
pub mod codec;
pub mod paging;
pub mod time;

pub mod common {
    pub mod v1 {
        tonic::include_proto!("atenciones.common.v1");
    }
}

pub mod queue {
    pub mod v1 {
        tonic::include_proto!("atenciones.queue.v1");
    }
}

pub mod messaging {
    pub mod v1 {
        tonic::include_proto!("atenciones.messaging.v1");
    }
}

pub mod form {
    pub mod v1 {
        tonic::include_proto!("atenciones.form.v1");
    }
}

pub mod history {
    pub mod v1 {
        tonic::include_proto!("atenciones.history.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("atenciones.gateway.v1");
    }
}
