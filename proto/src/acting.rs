//! Requests that act on someone's behalf name them in a field (`agent_id`,
//! `actor_id`…). A service serves such a request only when that field is the
//! verified caller, and checks every one the same way through [`Acting`].

/// A request naming who acts.
pub trait Acting {
    /// The field naming who acts, as error details name it.
    const FIELD: &'static str;
    /// Who the request says acts.
    fn actor(&self) -> &str;
}

macro_rules! acting {
    ($($package:ident { $($message:ident => $field:ident),* $(,)? })*) => {
        $($(
            impl Acting for crate::$package::v1::$message {
                const FIELD: &'static str = stringify!($field);
                fn actor(&self) -> &str {
                    &self.$field
                }
            }
        )*)*
        /// Full proto names of the requests implementing [`Acting`]; a test
        /// checks that every service request naming an actor is among them.
        pub const ACTING: &[&str] = &[
            $($(concat!("atenciones.", stringify!($package), ".v1.", stringify!($message))),*),*
        ];
    };
}

acting! {
    queue {
        ListAttentionsRequest => agent_id,
        GetAttentionRequest => agent_id,
        OpenAttentionRequest => agent_id,
        StartOutboundAttentionRequest => agent_id,
        FinishAttentionRequest => agent_id,
        GetAgentRequest => agent_id,
        SetAgentPresenceRequest => agent_id,
        GetAgentPresenceRequest => agent_id,
        HeartbeatRequest => agent_id,
        DeclineOfferRequest => agent_id,
        TransferAttentionRequest => agent_id,
        SetAttentionTagRequest => agent_id,
        SaveSupervisorRequest => actor_id,
        SetVipCustomerRequest => actor_id,
        DeactivateAgentRequest => actor_id,
        DeactivateSupervisorRequest => actor_id,
        SaveCampaignRequest => actor_id,
        DeactivateCampaignRequest => actor_id,
        SaveBusinessNumberRequest => actor_id,
        DeactivateBusinessNumberRequest => actor_id,
        SaveAgentRequest => actor_id,
        GetCampaignSnapshotRequest => actor_id,
        ListCampaignsRequest => actor_id,
        ListAgentsRequest => actor_id,
        ListAuditEntriesRequest => actor_id,
        CreateDialerRequest => actor_id,
        AddDialerContactsRequest => actor_id,
        GetDialerRequest => actor_id,
        SetDialerStateRequest => actor_id,
        ListDialersRequest => actor_id,
        ListDialerContactsRequest => actor_id,
    }
    form {
        PublishFormRequest => actor,
    }
    history {
        EraseCustomerRequest => actor,
    }
    messaging {
        OptOutCustomerRequest => actor,
    }
}

/// Sends name the agent who sends in their recipient.
macro_rules! sent_by {
    ($($message:ident),*) => {
        $(
            impl Acting for crate::messaging::v1::$message {
                const FIELD: &'static str = "recipient.agent_id";
                fn actor(&self) -> &str {
                    self.recipient.as_ref().map_or("", |r| &r.agent_id)
                }
            }
        )*
        /// Full proto names of the sends implementing [`Acting`].
        pub const SENDS: &[&str] = &[$(concat!("atenciones.messaging.v1.", stringify!($message))),*];
    };
}

sent_by!(
    SendTextRequest,
    SendMediaRequest,
    SendTemplateRequest,
    SendReactionRequest
);
