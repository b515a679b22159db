//! `gateway/API.md`, the API reference, is generated from the proto files'
//! comments (carried in the compiled descriptor set). This test fails when the
//! committed file is out of date; `UPDATE_API_REFERENCE=1 cargo test -p
//! atenciones-proto --test api_reference` rewrites it.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet,
};

/// Descriptor path tags (descriptor.proto field numbers).
const MESSAGE: i32 = 4;
const ENUM: i32 = 5;
const SERVICE: i32 = 6;
const FIELD: i32 = 2;
const NESTED: i32 = 3;
const VALUE: i32 = 2;
const METHOD: i32 = 2;

/// The leading comment of the element at `path`, trimmed.
fn comment(file: &FileDescriptorProto, path: &[i32]) -> String {
    file.source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
        .and_then(|l| l.leading_comments.clone())
        .map(|c| {
            c.lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn type_name(field: &FieldDescriptorProto) -> String {
    let name = match field.r#type() {
        Type::Message | Type::Enum => field.type_name().trim_start_matches('.').to_owned(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Bool => "bool".into(),
        Type::Int32 => "int32".into(),
        Type::Int64 => "int64".into(),
        Type::Uint32 => "uint32".into(),
        Type::Uint64 => "uint64".into(),
        Type::Double => "double".into(),
        Type::Float => "float".into(),
        other => format!("{other:?}").to_lowercase(),
    };
    if field.label() == Label::Repeated {
        format!("repeated {name}")
    } else {
        name
    }
}

fn message(
    out: &mut String,
    file: &FileDescriptorProto,
    prefix: &str,
    path: &[i32],
    m: &DescriptorProto,
) {
    let name = format!("{prefix}{}", m.name());
    let _ = writeln!(out, "### {name}\n\n{}\n", comment(file, path));
    if !m.field.is_empty() {
        out.push_str("| field | type | meaning |\n| --- | --- | --- |\n");
        for (i, field) in m.field.iter().enumerate() {
            let mut field_path = path.to_vec();
            field_path.extend([FIELD, i32::try_from(i).unwrap_or_default()]);
            let oneof = field
                .oneof_index
                .and_then(|o| m.oneof_decl.get(usize::try_from(o).unwrap_or_default()))
                .filter(|_| !field.proto3_optional())
                .map(|o| format!(" (one of `{}`)", o.name()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {}{oneof} |",
                field.name(),
                type_name(field),
                comment(file, &field_path).replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    for (i, nested) in m.nested_type.iter().enumerate() {
        let mut nested_path = path.to_vec();
        nested_path.extend([NESTED, i32::try_from(i).unwrap_or_default()]);
        message(out, file, &format!("{name}."), &nested_path, nested);
    }
}

fn enumeration(
    out: &mut String,
    file: &FileDescriptorProto,
    path: &[i32],
    e: &EnumDescriptorProto,
) {
    let _ = writeln!(out, "### {}\n\n{}\n", e.name(), comment(file, path));
    out.push_str("| value | meaning |\n| --- | --- |\n");
    for (i, value) in e.value.iter().enumerate() {
        let mut value_path = path.to_vec();
        value_path.extend([VALUE, i32::try_from(i).unwrap_or_default()]);
        let _ = writeln!(
            out,
            "| `{}` | {} |",
            value.name(),
            comment(file, &value_path).replace('|', "\\|")
        );
    }
    out.push('\n');
}

fn reference() -> String {
    let set =
        FileDescriptorSet::decode(atenciones_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut files: Vec<_> = set
        .file
        .iter()
        .filter(|f| f.package().starts_with("atenciones."))
        .collect();
    // The gateway (what front-ends call) first, then the types it uses.
    files.sort_by_key(|f| {
        (
            !f.package().starts_with("atenciones.gateway"),
            f.name().to_owned(),
        )
    });
    let mut out = String::from(
        "# API reference\n\nGenerated from the proto files' comments by \
         `proto/tests/api_reference.rs`; do not edit by hand. Front-end teams call the \
         gateway's `AgentDeskService` and `AdminService` (gRPC, or gRPC-Web from a \
         browser); the other packages are the services behind it, whose types the \
         gateway's messages reuse.\n\n",
    );
    for file in files {
        let _ = writeln!(out, "## `{}` ({})\n", file.package(), file.name());
        for (s, service) in file.service.iter().enumerate() {
            let path = [SERVICE, i32::try_from(s).unwrap_or_default()];
            let _ = writeln!(
                out,
                "### service {}\n\n{}\n",
                service.name(),
                comment(file, &path)
            );
            for (m, method) in service.method.iter().enumerate() {
                let stream = if method.server_streaming() {
                    "stream "
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "- **{}**(`{}`) → {stream}`{}`: {}",
                    method.name(),
                    method.input_type().rsplit('.').next().unwrap_or_default(),
                    method.output_type().rsplit('.').next().unwrap_or_default(),
                    comment(
                        file,
                        &[
                            SERVICE,
                            path[1],
                            METHOD,
                            i32::try_from(m).unwrap_or_default()
                        ]
                    )
                );
            }
            out.push('\n');
        }
        for (i, m) in file.message_type.iter().enumerate() {
            message(
                &mut out,
                file,
                "",
                &[MESSAGE, i32::try_from(i).unwrap_or_default()],
                m,
            );
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            enumeration(
                &mut out,
                file,
                &[ENUM, i32::try_from(i).unwrap_or_default()],
                e,
            );
        }
    }
    out
}

#[test]
fn the_api_reference_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/API.md");
    let generated = reference();
    if std::env::var_os("UPDATE_API_REFERENCE").is_some() {
        std::fs::write(&path, &generated).expect("write gateway/API.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "gateway/API.md is out of date: run UPDATE_API_REFERENCE=1 cargo test -p atenciones-proto --test api_reference"
    );
}
