//! Generates the gRPC client of the broker's proto (`src/grpc.rs`), with protox: no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../broker/proto");
    let fds = protox::compile(["mom/v1/broker.proto"], ["../broker/proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(false).compile_fds(fds)?;
    Ok(())
}
