//! Every service request that names who acts is checked against the verified
//! caller: a request with such a field that [`Acting`] does not cover would be
//! served for anyone it names.

use prost::Message as _;
use prost_types::FileDescriptorSet;

use atenciones_proto::acting::{ACTING, SENDS};

/// Fields that name who acts.
const ACTOR_FIELDS: [&str; 3] = ["agent_id", "actor_id", "actor"];

#[test]
fn every_request_naming_an_actor_is_checked() {
    let set =
        FileDescriptorSet::decode(atenciones_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut naming = Vec::new();
    for file in &set.file {
        let package = file.package();
        // The gateway takes the actor from the credential, never from a field.
        if package.starts_with("atenciones.gateway") {
            continue;
        }
        for message in file
            .message_type
            .iter()
            .filter(|m| m.name().ends_with("Request"))
        {
            let full = format!("{package}.{}", message.name());
            let fields = || message.field.iter();
            if fields().any(|f| ACTOR_FIELDS.contains(&f.name())) {
                naming.push((full.clone(), ACTING.contains(&full.as_str())));
            } else if fields().any(|f| f.type_name() == ".atenciones.messaging.v1.Recipient") {
                naming.push((full.clone(), SENDS.contains(&full.as_str())));
            }
        }
    }
    let unchecked: Vec<_> = naming.iter().filter(|(_, checked)| !checked).collect();
    assert!(
        unchecked.is_empty(),
        "not checked against the caller: {unchecked:?}"
    );
    // The lists name nothing that is not a request naming an actor.
    assert_eq!(naming.len(), ACTING.len() + SENDS.len(), "{naming:?}");
}
