//! The codec of every generated client and server: prost's, with two rules
//! for requests, so that a caller's mistake is told to the caller:
//! - a request that does not decode is INVALID_ARGUMENT with prost's
//!   description, which names the message and field. prost's codec calls it
//!   INTERNAL (the gRPC status table's choice), which the gateway must hide
//!   as an internal fault, so a client sending invalid UTF-8 learnt nothing;
//! - a text field holding the NUL character is INVALID_ARGUMENT naming the
//!   field, before any handler runs: PostgreSQL cannot store it, and every
//!   service would otherwise fail on it deep inside, as INTERNAL.
//!
//! Requests and responses are told apart by name: buf's STANDARD lint makes
//! every request `<Rpc>Request`. A response that does not decode (a peer's
//! fault) stays INTERNAL.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::LazyLock;

use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost::{Message, Name};
use prost_types::FileDescriptorSet;
use prost_types::field_descriptor_proto::Type;
use tonic::codec::{BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder as TonicDecoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// See the module's documentation.
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

/// Decodes `U`; see the module's documentation for its errors.
pub struct Decoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> TonicDecoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let message = U::decode(bytes.clone()).map_err(decode_error::<U>)?;
        if is_request::<U>()
            && let Some(field) = nul_field(&U::full_name(), &bytes)
        {
            return Err(Status::with_error_details(
                Code::InvalidArgument,
                format!("{field} must not contain the NUL character (U+0000)"),
                ErrorDetails::with_bad_request_violation(
                    field,
                    "must not contain the NUL character (U+0000)",
                ),
            ));
        }
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

fn is_request<U: Name>() -> bool {
    U::NAME.ends_with("Request")
}

fn decode_error<U: Name>(error: prost::DecodeError) -> Status {
    if is_request::<U>() {
        Status::invalid_argument(format!("the request is not a valid {}: {error}", U::NAME))
    } else {
        Status::internal(error.to_string())
    }
}

/// What the codec needs to know of a field.
enum Field {
    Text(String),
    Message(String, String),
}

/// Every message's text and message fields by number, by full name.
static FIELDS: LazyLock<HashMap<String, HashMap<u32, Field>>> = LazyLock::new(|| {
    let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set compiled into this crate");
    let mut fields = HashMap::new();
    for file in &set.file {
        for message in &file.message_type {
            collect(file.package(), message, &mut fields);
        }
    }
    fields
});

fn collect(
    scope: &str,
    message: &prost_types::DescriptorProto,
    into: &mut HashMap<String, HashMap<u32, Field>>,
) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        collect(&name, nested, into);
    }
    let fields = message
        .field
        .iter()
        .filter_map(|f| {
            let field = match f.r#type() {
                Type::String => Field::Text(f.name().to_owned()),
                Type::Message => Field::Message(
                    f.name().to_owned(),
                    f.type_name().trim_start_matches('.').to_owned(),
                ),
                _ => return None,
            };
            Some((f.number() as u32, field))
        })
        .collect();
    into.insert(name, fields);
}

/// The path (`customer.name`) of the first text field of `bytes`, a
/// `message` that decoded, that holds a NUL.
fn nul_field(message: &str, mut bytes: &[u8]) -> Option<String> {
    let fields = FIELDS.get(message)?;
    while bytes.has_remaining() {
        let (tag, wire_type) = decode_key(&mut bytes).ok()?;
        if wire_type != WireType::LengthDelimited {
            skip_field(wire_type, tag, &mut bytes, DecodeContext::default()).ok()?;
            continue;
        }
        let len = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
        let value = bytes.get(..len)?;
        bytes.advance(len);
        match fields.get(&tag) {
            Some(Field::Text(name)) if value.contains(&0) => return Some(name.clone()),
            Some(Field::Message(name, nested)) => {
                if let Some(inner) = nul_field(nested, value) {
                    return Some(format!("{name}.{inner}"));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1::Customer;
    use crate::gateway::v1::{SendTextRequest, SendTextResponse};
    use crate::queue::v1::RecordInboundMessageRequest;

    #[test]
    fn a_request_that_does_not_decode_is_invalid_argument_naming_the_field() {
        // Field 2 of SendTextRequest (text) as a string holding invalid UTF-8.
        let bytes: &[u8] = &[0x12, 0x02, 0xC3, 0x28];
        let error = SendTextRequest::decode(bytes).expect_err("invalid UTF-8");
        let status = decode_error::<SendTextRequest>(error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("the request is not a valid SendTextRequest")
                && status.message().contains("SendTextRequest.text"),
            "{}",
            status.message()
        );
        let error = SendTextResponse::decode(&[0x0A, 0x05][..]).expect_err("truncated");
        assert_eq!(
            decode_error::<SendTextResponse>(error).code(),
            Code::Internal
        );
    }

    #[test]
    fn a_nul_is_found_in_any_text_field_however_deep() {
        let request = |name: &str, preview: &str| RecordInboundMessageRequest {
            business_phone_number_id: "1122334455667".into(),
            customer: Some(Customer {
                id: "c".into(),
                name: name.into(),
                ..Default::default()
            }),
            preview: preview.into(),
            ..Default::default()
        };
        let full_name = RecordInboundMessageRequest::full_name();
        let found = |r: RecordInboundMessageRequest| nul_field(&full_name, &r.encode_to_vec());
        assert_eq!(
            found(request("Ana\0", "Hola")).as_deref(),
            Some("customer.name")
        );
        assert_eq!(found(request("Ana", "Ho\0la")).as_deref(), Some("preview"));
        assert_eq!(found(request("Ana 😀", "Hola ñ")), None);
    }
}
