//! gRPC channels to the live district nodes, by node id, at the internal addresses they
//! registered (`cluster:addrs`): what intake's district client and a district node forwarding
//! a terminal's command use to reach a district's owner.

use std::collections::HashMap;
use std::sync::Arc;

use dispatch_bus::ports::{DistrictClient, DistrictNodes, DistrictPort};
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::NodeId;
use crate::membership::LiveView;

/// One lazily connecting channel per live node, made on first use and kept while the node is
/// live at the same address. The addresses come from a membership's view, so a node that
/// registers again at another address gets a new channel, and the channels of nodes that
/// left are dropped (with their connections) at the next lookup that makes a channel.
pub struct NodeChannels {
    view: watch::Receiver<LiveView>,
    /// Node id -> (the address the channel is for, the channel).
    cache: Mutex<HashMap<NodeId, (String, Channel)>>,
}

impl std::fmt::Debug for NodeChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeChannels")
            .field("live", &*self.view.borrow())
            .field("channels", &self.cache.lock().len())
            .finish()
    }
}

impl NodeChannels {
    /// Channels to the nodes of `view` (a [`crate::Membership::view`]).
    pub fn new(view: watch::Receiver<LiveView>) -> Self {
        Self {
            view,
            cache: Mutex::default(),
        }
    }

    /// The channel to `node` at the address it registered; `None` when `node` is not live or
    /// its address is not a valid URI (logged: the node registered something unusable).
    pub fn channel(&self, node: &str) -> Option<Channel> {
        let view = self.view.borrow();
        let addr = view.addr(node)?;
        let mut cache = self.cache.lock();
        if let Some((cached, channel)) = cache.get(node)
            && cached == addr
        {
            return Some(channel.clone());
        }
        let channel = match dispatch_bus::ports::channel(addr) {
            Ok(channel) => channel,
            Err(e) => {
                tracing::warn!(%node, %addr, error = %e.message(), "node registered an address that is not a URI");
                return None;
            }
        };
        cache.retain(|id, _| view.contains(id));
        cache.insert(node.to_owned(), (addr.to_owned(), channel.clone()));
        Some(channel)
    }
}

impl DistrictNodes for NodeChannels {
    fn port(&self, node: &str) -> Option<Arc<dyn DistrictPort>> {
        self.channel(node).map(DistrictClient::grpc_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(members: &[(&str, &str)]) -> LiveView {
        LiveView::new(
            members
                .iter()
                .map(|(n, a)| ((*n).to_owned(), (*a).to_owned())),
        )
    }

    #[tokio::test]
    async fn channels_follow_the_registered_addresses() {
        let (tx, rx) = watch::channel(view(&[
            ("node-a", "127.0.0.1:1"),
            ("node-b", "127.0.0.1:2"),
        ]));
        let channels = NodeChannels::new(rx);
        assert!(channels.channel("node-a").is_some());
        assert!(channels.channel("node-b").is_some());
        assert!(channels.channel("node-c").is_none(), "not live");
        assert_eq!(channels.cache.lock()["node-a"].0, "127.0.0.1:1");
        // node-a registers again elsewhere; node-b leaves.
        tx.send_replace(view(&[("node-a", "127.0.0.1:3")]));
        assert!(channels.channel("node-b").is_none());
        assert!(channels.channel("node-a").is_some());
        let cache = channels.cache.lock();
        assert_eq!(cache["node-a"].0, "127.0.0.1:3");
        assert!(
            !cache.contains_key("node-b"),
            "a departed node's channel is dropped"
        );
    }
}
