//! Fuzzing every gateway request message, decoding and validation, through
//! the running gateway (the pipeline, the handlers and the services behind
//! them, on SQLite and PostgreSQL).
//!
//! Every RPC of the gateway's services is read from the compiled descriptor
//! set, so a new RPC is fuzzed without touching this file. For each one,
//! inputs are:
//! - messages built from the descriptor: every field of its type, present or
//!   not, with values from a corpus of real ids (the demo's campaigns,
//!   agents, numbers, an attention the caller holds) and hostile text (SQL-
//!   and script-looking, NUL, huge, right-to-left, formatting codes) or
//!   random values, nested messages and oneofs included;
//! - those messages mutated (bytes flipped, cut, inserted, repeated);
//! - random bytes.
//!
//! Each call is made by a caller the authorization table lets through. No
//! answer may be UNKNOWN, INTERNAL or DATA_LOSS (a panic or an unhandled
//! fault inside), UNAVAILABLE (a crashed server), UNIMPLEMENTED or a missed
//! deadline; afterwards the gateway still serves.
//!
//! `FUZZ_CASES` (default 12) sets the cases per RPC; `FUZZ_SEED` replays a
//! run (every run prints its seed).

use std::collections::HashMap;

use prost::Message;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;
use tonic::transport::Channel;

use atenciones_gateway::authorize::TABLE;
use atenciones_proto::gateway::v1 as pb;
use atenciones_tests::{Role, TestDatabase, TestSuite, on_both_databases, raw, text_webhook};

const PACKAGE: &str = "atenciones.gateway.v1";
const VENTAS_NUMBER: &str = "1122334455667";
/// How deep generated messages nest; deeper fields are left out.
const MAX_DEPTH: usize = 6;

/// The message types of the descriptor set, by full name (`.pkg.Msg`).
struct Schema {
    messages: HashMap<String, DescriptorProto>,
}

/// One RPC: its path, its request type and whether it streams.
struct Rpc {
    path: String,
    input: String,
    streaming: bool,
}

impl Schema {
    fn load() -> (Self, Vec<Rpc>) {
        let set = FileDescriptorSet::decode(atenciones_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set");
        let mut messages = HashMap::new();
        let mut rpcs = Vec::new();
        for file in &set.file {
            let package = file.package();
            for message in &file.message_type {
                collect(&format!(".{package}"), message, &mut messages);
            }
            if package != PACKAGE {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(Rpc {
                        path: format!("/{package}.{}/{}", service.name(), method.name()),
                        input: method.input_type().to_owned(),
                        streaming: method.server_streaming(),
                    });
                }
            }
        }
        (Self { messages }, rpcs)
    }
}

fn collect(scope: &str, message: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        collect(&name, nested, into);
    }
    into.insert(name, message.clone());
}

/// Values worth trying in a text field.
struct Corpus {
    /// Real ids and numbers the caller may name: deeper validation runs.
    real: Vec<String>,
}

const HOSTILE: &[&str] = &[
    "",
    " ",
    "' OR 1=1; DROP TABLE attentions; --",
    "Robert'); DELETE FROM messages WHERE ('1'='1",
    "<script>alert(document.cookie)</script>",
    "\"><img src=x onerror=alert(1)>",
    "a\u{0}b",
    "\u{0}",
    "\u{202E}gnp.exe",
    "%s%s%s%n",
    "{{1}} {{999999}}",
    "../../../etc/passwd",
    "ventas\u{200B}",
    "NaN",
    "-1",
    "99999999999999999999999999",
    "2026-13-45T99:99:99Z",
    "+5491155550000",
    "*",
    "%",
    "_",
    "\\",
];

impl Corpus {
    fn text(&self, rng: &mut fastrand::Rng) -> String {
        match rng.u8(0..10) {
            0..=3 => self.real[rng.usize(0..self.real.len())].clone(),
            4..=6 => HOSTILE[rng.usize(0..HOSTILE.len())].to_owned(),
            7 => {
                let unit = ["x", "ñ", "😀", "\u{0301}", "\u{FFFF}"][rng.usize(0..5)];
                unit.repeat(rng.usize(1..70_000))
            }
            _ => (0..rng.usize(0..80)).map(|_| rng.char(..)).collect(),
        }
    }
}

/// Writes a message of type `name` with random fields into `out`.
fn generate(
    schema: &Schema,
    corpus: &Corpus,
    name: &str,
    depth: usize,
    rng: &mut fastrand::Rng,
    out: &mut Vec<u8>,
) {
    let Some(message) = schema.messages.get(name) else {
        return; // A well-known type outside the set: left empty.
    };
    // At most one member of each oneof.
    let chosen: HashMap<i32, usize> = message
        .field
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.oneof_index.map(|o| (o, i)))
        .fold(HashMap::new(), |mut chosen, (oneof, i)| {
            if !chosen.contains_key(&oneof) || rng.bool() {
                chosen.insert(oneof, i);
            }
            chosen
        });
    for (i, field) in message.field.iter().enumerate() {
        if let Some(oneof) = field.oneof_index
            && (chosen.get(&oneof) != Some(&i) || rng.u8(0..4) == 0)
        {
            continue;
        }
        let count = match field.label() {
            Label::Repeated => rng.usize(0..4),
            _ if rng.u8(0..10) < 7 => 1,
            _ => 0,
        };
        for _ in 0..count {
            value(schema, corpus, field, depth, rng, out);
        }
    }
}

fn value(
    schema: &Schema,
    corpus: &Corpus,
    field: &prost_types::FieldDescriptorProto,
    depth: usize,
    rng: &mut fastrand::Rng,
    out: &mut Vec<u8>,
) {
    let tag = field.number() as u32;
    let varint = |rng: &mut fastrand::Rng| match rng.u8(0..6) {
        0 => 0,
        1 => 1,
        2 => u64::MAX, // -1 as an int
        3 => u64::from(u32::MAX),
        4 => rng.u64(0..100),
        _ => rng.u64(..),
    };
    match field.r#type() {
        Type::String => {
            let text = corpus.text(rng);
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
        Type::Bytes => {
            let bytes: Vec<u8> = if rng.bool() {
                corpus.text(rng).into_bytes()
            } else {
                (0..rng.usize(0..2_000)).map(|_| rng.u8(..)).collect()
            };
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(&bytes);
        }
        Type::Message => {
            if depth >= MAX_DEPTH {
                return;
            }
            let mut nested = Vec::new();
            generate(
                schema,
                corpus,
                field.type_name(),
                depth + 1,
                rng,
                &mut nested,
            );
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(nested.len() as u64, out);
            out.extend_from_slice(&nested);
        }
        Type::Double | Type::Fixed64 | Type::Sfixed64 => {
            encode_key(tag, WireType::SixtyFourBit, out);
            out.put_u64_le(varint(rng));
        }
        Type::Float | Type::Fixed32 | Type::Sfixed32 => {
            encode_key(tag, WireType::ThirtyTwoBit, out);
            out.put_u32_le(varint(rng) as u32);
        }
        Type::Group => {}
        // Every varint type: ints, bools, enums (unknown numbers included).
        _ => {
            encode_key(tag, WireType::Varint, out);
            encode_varint(varint(rng), out);
        }
    }
}

/// Flips, cuts, inserts or repeats bytes of `input`.
fn mutate(mut input: Vec<u8>, rng: &mut fastrand::Rng) -> Vec<u8> {
    for _ in 0..rng.usize(1..5) {
        let at = rng.usize(0..=input.len());
        match rng.u8(0..4) {
            0 if at < input.len() => input[at] ^= 1 << rng.u8(0..8),
            1 => input.truncate(at),
            2 => {
                let noise: Vec<u8> = (0..rng.usize(1..9)).map(|_| rng.u8(..)).collect();
                input.splice(at..at, noise);
            }
            _ => {
                let end = rng.usize(at..=input.len());
                let chunk = input[at..end].to_vec();
                input.splice(at..at, chunk);
            }
        }
    }
    input
}

/// Codes that mean the server failed rather than refused.
const FAULTS: [Code; 6] = [
    Code::Unknown,
    Code::Internal,
    Code::DataLoss,
    Code::Unavailable,
    Code::Unimplemented,
    Code::DeadlineExceeded,
];

async fn every_gateway_request_decodes_and_validates_without_a_fault(db: TestDatabase) {
    // A fault's inside story is in the logs, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_test_writer()
        .try_init();
    let suite = TestSuite::start(db).await;
    let attention = suite
        .queued_attention(
            &text_webhook(
                VENTAS_NUMBER,
                "5491100000001",
                "Fuzz",
                "wamid.fuzz.1",
                "Hola",
            ),
            "ana",
        )
        .await;
    suite.open("ana", &attention).await;
    let (schema, rpcs) = Schema::load();
    assert!(rpcs.len() > 50, "every gateway RPC: {}", rpcs.len());
    let corpus = Corpus {
        real: [
            attention.as_str(),
            "ventas",
            "soporte",
            "ana",
            "luis",
            "marta",
            "sofia",
            VENTAS_NUMBER,
            "5491100000001",
            "wamid.fuzz.1",
            "available",
            "consulta",
            "es_AR",
        ]
        .map(str::to_owned)
        .to_vec(),
    };
    let tokens: Vec<(Role, String)> = [Role::Agent, Role::Supervisor, Role::Reporter]
        .into_iter()
        .map(|role| {
            let subject = if role == Role::Agent { "ana" } else { "sofia" };
            (role, suite.token(subject, role))
        })
        .collect();
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    println!(
        "fuzzing {} RPCs, {cases} cases each, FUZZ_SEED={seed}",
        rpcs.len()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let channel = Channel::from_shared(suite.gateway_url())
        .expect("url")
        .connect()
        .await
        .expect("gateway reachable");
    let mut faults = Vec::new();
    for rpc in &rpcs {
        let allowed = TABLE
            .iter()
            .find(|(name, _)| rpc.path.ends_with(&format!(".{name}")))
            .map(|(_, roles)| roles[0])
            .unwrap_or_else(|| panic!("{} is in the authorization table", rpc.path));
        let token = tokens
            .iter()
            .find_map(|(role, token)| (*role == allowed).then_some(token))
            .expect("a token for every role");
        for case in 0..cases {
            let mut body = Vec::new();
            generate(&schema, &corpus, &rpc.input, 0, &mut rng, &mut body);
            let body = match case % 8 {
                0..=4 => body,
                5 | 6 => mutate(body, &mut rng),
                _ => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
            };
            let shown = hex::encode(&body[..body.len().min(64)]);
            let status = raw::call(&channel, &rpc.path, rpc.streaming, token, body).await;
            if FAULTS.contains(&status.code()) {
                faults.push(format!(
                    "{} case {case}: {:?} {:?}; input (first 64 bytes) {shown}",
                    rpc.path,
                    status.code(),
                    status.message()
                ));
            }
        }
    }
    assert!(
        faults.is_empty(),
        "FUZZ_SEED={seed}: {} faults:\n{}",
        faults.len(),
        faults.join("\n")
    );
    let me = suite.desk("ana").await.get_me(pb::GetMeRequest {}).await;
    assert!(me.is_ok(), "the gateway still serves: {me:?}");
    suite.stop().await;
}
on_both_databases!(every_gateway_request_decodes_and_validates_without_a_fault);
