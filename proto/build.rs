//! Compiles every `.proto` under `atenciones/` once, for all crates, with the
//! vendored `protoc` so a fresh machine needs nothing installed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "atenciones/common/v1/common.proto",
        "atenciones/queue/v1/queue.proto",
        "atenciones/messaging/v1/messaging.proto",
        "atenciones/form/v1/form.proto",
        "atenciones/history/v1/history.proto",
        "atenciones/gateway/v1/gateway.proto",
        "atenciones/gateway/v1/admin.proto",
    ];
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // `prost::Name` on every message: the codec finds a request's fields by it.
    config.enable_type_names();
    tonic_prost_build::configure()
        // prost's codec, with undecodable requests as INVALID_ARGUMENT.
        .codec_path("crate::codec::Codec")
        .file_descriptor_set_path(out_dir.join("atenciones_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    println!("cargo:rerun-if-changed=atenciones");
    Ok(())
}
