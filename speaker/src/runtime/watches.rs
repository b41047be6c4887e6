//! The speaker's watches, merged into one ordered stream of [`Input`]s. Each backs off on its
//! own after an error and relists when it restarts. Reads only: the speaker's steady state
//! makes no API writes.

use std::pin::Pin;

use futures::{Stream, TryStreamExt};
use ironlb_crds::{IPAddressPool, L2Advertisement, ServiceL2Status};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::feed::Input;

type InputStream = Pin<Box<dyn Stream<Item = Result<Input, watcher::Error>> + Send>>;

/// Services, EndpointSlices and Nodes cluster-wide; pools, advertisements and
/// ServiceL2Statuses in `namespace`.
pub fn inputs(
    client: &kube::Client,
    namespace: &str,
) -> impl Stream<Item = Result<Input, watcher::Error>> + Send + use<> {
    let config = watcher::Config::default();
    let streams: Vec<InputStream> = vec![
        Box::pin(
            watcher(Api::<Node>::all(client.clone()), config.clone())
                .default_backoff()
                .map_ok(Input::Node),
        ),
        Box::pin(
            watcher(
                Api::<IPAddressPool>::namespaced(client.clone(), namespace),
                config.clone(),
            )
            .default_backoff()
            .map_ok(Input::Pool),
        ),
        Box::pin(
            watcher(
                Api::<L2Advertisement>::namespaced(client.clone(), namespace),
                config.clone(),
            )
            .default_backoff()
            .map_ok(Input::Advertisement),
        ),
        Box::pin(
            watcher(
                Api::<ServiceL2Status>::namespaced(client.clone(), namespace),
                config.clone(),
            )
            .default_backoff()
            .map_ok(Input::Status),
        ),
        Box::pin(
            watcher(Api::<EndpointSlice>::all(client.clone()), config.clone())
                .default_backoff()
                .map_ok(Input::Slice),
        ),
        Box::pin(
            watcher(Api::<Service>::all(client.clone()), config)
                .default_backoff()
                .map_ok(Input::Service),
        ),
    ];
    futures::stream::select_all(streams)
}
