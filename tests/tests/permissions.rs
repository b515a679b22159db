//! Every gateway RPC × every kind of caller, driven by the gateway's own
//! table (`atenciones_gateway::authorize::TABLE`) and the compiled proto: an
//! RPC added to the API without a row in the table fails here; a caller the
//! table does not allow is refused before the handler runs; an allowed one
//! reaches it. (Campaign scoping, which needs real requests, is covered per
//! RPC in access.rs, admin.rs and reports.rs.)

use std::collections::BTreeSet;

use prost::Message as _;
use tonic::Code;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use atenciones_gateway::authorize::TABLE;
use atenciones_tests::{Backend, Role, TestDatabase, TestSuite};

/// (path, server streaming) of every method of the gateway's services.
fn gateway_methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(atenciones_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    set.file
        .iter()
        .filter(|file| file.package() == "atenciones.gateway.v1")
        .flat_map(|file| {
            file.service.iter().flat_map(move |service| {
                service.method.iter().map(move |method| {
                    (
                        format!("{}/{}", service.name(), method.name()),
                        method.server_streaming(),
                    )
                })
            })
        })
        .collect()
}

/// Calls `method` with an empty request (every field unset) as `token`.
async fn call(
    channel: &Channel,
    method: &str,
    streaming: bool,
    token: Option<&str>,
) -> tonic::Status {
    let mut grpc = Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(());
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    let path = PathAndQuery::try_from(format!("/atenciones.gateway.v1.{method}")).expect("path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = if streaming {
        // A refusal comes before the stream opens; an opened stream reached
        // its handler (live streams may wait long for their first item).
        grpc.server_streaming(request, path, codec)
            .await
            .map(|_| ())
    } else {
        grpc.unary(request, path, codec).await.map(|_| ())
    };
    result.err().unwrap_or_else(|| tonic::Status::ok(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_admits_exactly_the_roles_of_its_row() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("SQLite");
    let suite = TestSuite::start(db).await;

    let methods = gateway_methods();
    let in_proto: BTreeSet<_> = methods.iter().map(|(m, _)| m.as_str()).collect();
    let in_table: BTreeSet<_> = TABLE.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        in_proto, in_table,
        "the table lists every RPC, and only those"
    );

    let channel = Channel::from_shared(suite.gateway_url())
        .expect("url")
        .connect()
        .await
        .expect("gateway");
    // The demo's agent and supervisor; a reporter is known by role alone.
    let callers = [
        (Role::Agent, suite.token("ana", Role::Agent)),
        (Role::Supervisor, suite.token("sofia", Role::Supervisor)),
        (Role::Reporter, suite.token("rita", Role::Reporter)),
    ];
    let mut checked = 0;
    for (method, streaming) in &methods {
        let anonymous = call(&channel, method, *streaming, None).await;
        assert_eq!(
            anonymous.code(),
            Code::Unauthenticated,
            "{method} without a credential"
        );
        let allowed = TABLE
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, roles)| *roles)
            .unwrap_or_default();
        for (role, token) in &callers {
            let status = call(&channel, method, *streaming, Some(token)).await;
            let refused_by_table = status.code() == Code::PermissionDenied
                && status.message().contains("may not call");
            if allowed.contains(role) {
                assert!(
                    !refused_by_table && status.code() != Code::Unauthenticated,
                    "{method} as {role:?} reaches its handler: {status:?}"
                );
            } else {
                assert!(
                    refused_by_table,
                    "{method} as {role:?} is refused: {status:?}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, methods.len() * 3);
    suite.stop().await;
}
