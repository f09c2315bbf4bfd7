//! Generates the gRPC server of `proto/mom/v1/broker.proto` (the `grpc` module). The proto is
//! compiled by protox, in Rust: the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["mom/v1/broker.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(false).build_server(true).btree_map(".").compile_fds(fds)?;
    Ok(())
}
