//! gRPC calls with request bodies as bytes: for requests no generated client
//! would send (mutated, truncated, invalid UTF-8, deeply nested).

use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Sends and receives bytes as they are.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Calls `path` (`/pkg.Service/Method`) with `body` as `token`. The status:
/// OK when it answered, or for a stream (`streaming`) that opened and kept
/// streaming for a moment.
pub async fn call(
    channel: &Channel,
    path: &str,
    streaming: bool,
    token: &str,
    body: Vec<u8>,
) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(20));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    let path = path.parse().expect("a path");
    if grpc.ready().await.is_err() {
        return Status::unavailable("the connection is gone");
    }
    let outcome = if streaming {
        match grpc.server_streaming(request, path, Raw).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
                    Ok(Err(status)) => Err(status),
                    _ => Ok(()),
                }
            }
            Err(status) => Err(status),
        }
    } else {
        grpc.unary(request, path, Raw).await.map(drop)
    };
    outcome.err().unwrap_or_else(|| Status::new(Code::Ok, ""))
}
