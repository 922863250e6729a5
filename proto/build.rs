//! Compiles `dispatch/v1/*.proto` into `OUT_DIR` with the vendored protoc, so no system protoc
//! is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "dispatch/v1/common.proto",
        "dispatch/v1/intake.proto",
        "dispatch/v1/geo_router.proto",
        "dispatch/v1/district.proto",
        "dispatch/v1/case_squad.proto",
        "dispatch/v1/notification.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("dispatch_v1_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
