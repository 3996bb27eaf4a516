//! What the daemon builds from the config beside the executor, kept in step with a reload: the
//! DRBD and tgtd watches and the metrics endpoint read the running config from a
//! [`ConfigFeed`], and the real address backend holds one handle (and watch stream) per
//! configured address.
//!
//! A reload calls [`Follow::prepare`] before anything changes (handles for added addresses,
//! subscribed to the address watch before they are claimed; an interface that does not exist
//! refuses the reload) and [`Follow::commit`] when the new config runs (the watches report what
//! it adds and stop reporting what it removed; the removed addresses' handles go).

use std::sync::Arc;

use tokio::sync::watch;

use crate::backend::vip::NetlinkAddress;
use crate::backend::ConfigFeed;
use crate::config::Config;
use crate::error::BackendError;

/// The config feed and the address handles of a running daemon.
#[derive(Debug)]
pub struct Follow {
    feed: watch::Sender<Arc<Config>>,
    address: Option<Arc<NetlinkAddress>>,
}

impl Follow {
    /// Following `config` (the startup one); `address`: the address backend whose handles
    /// follow reloads (`None` where addresses are not real: `--simulate`, tests).
    pub fn new(config: Arc<Config>, address: Option<Arc<NetlinkAddress>>) -> Follow {
        Follow {
            feed: watch::channel(config).0,
            address,
        }
    }

    /// The address backend's tickle peer link, if it runs one.
    pub fn peer_link(&self) -> Option<&Arc<crate::peer_link::PeerLink>> {
        self.address.as_ref().and_then(|a| a.peer_link())
    }

    /// The real address backend, if any.
    pub fn address(&self) -> Option<&Arc<NetlinkAddress>> {
        self.address.as_ref()
    }

    /// A feed for one more follower (a watch, the metrics endpoint).
    pub fn feed(&self) -> ConfigFeed {
        self.feed.subscribe()
    }

    /// Before a reload of `config` changes anything: what its additions need.
    ///
    /// # Errors
    /// What [`NetlinkAddress::add_missing`] refuses (the reload is refused with it).
    pub async fn prepare(&self, config: &Config) -> Result<(), BackendError> {
        match &self.address {
            Some(a) => a.add_missing(config).await,
            None => Ok(()),
        }
    }

    /// `config` runs from now on (also after a refused reload, with the running config, to
    /// drop what [`Follow::prepare`] made for it).
    pub fn commit(&self, config: Arc<Config>) {
        if let Some(a) = &self.address {
            a.retain(&config);
        }
        self.feed.send_replace(config);
    }
}
