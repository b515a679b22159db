//! Clients of the services the queue calls.

use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_runtime::grpc::Channel;
use atenciones_runtime::{ServiceName, Settings};

/// Lazily connected channels; cloning a client is cheap.
#[derive(Clone)]
pub struct Clients {
    form: FormServiceClient<Channel>,
    messaging: MessagingServiceClient<Channel>,
    history: HistoryServiceClient<Channel>,
}

impl Clients {
    pub fn new(settings: &Settings) -> Result<Self, tonic::transport::Error> {
        let channel =
            |service| atenciones_runtime::grpc::service_channel(settings, "queue", service);
        Ok(Self {
            form: FormServiceClient::new(channel(ServiceName::Form)?),
            messaging: MessagingServiceClient::new(channel(ServiceName::Messaging)?),
            history: HistoryServiceClient::new(channel(ServiceName::History)?),
        })
    }

    pub fn form(&self) -> FormServiceClient<Channel> {
        self.form.clone()
    }

    pub fn messaging(&self) -> MessagingServiceClient<Channel> {
        self.messaging.clone()
    }

    pub fn history(&self) -> HistoryServiceClient<Channel> {
        self.history.clone()
    }
}
