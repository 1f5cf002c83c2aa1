//! Compiles `proto/glurpc.proto` with tonic. Uses the protoc binary shipped in the
//! `protoc-bin-vendored` crate unless `PROTOC` is already set, so a fresh machine
//! needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=proto/glurpc.proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // For gRPC server reflection.
        .file_descriptor_set_path(out.join("glurpc_descriptor.bin"))
        .compile_protos(&["proto/glurpc.proto"], &["proto"])?;
    Ok(())
}
