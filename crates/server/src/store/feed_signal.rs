//! The feed's wake-up signal: rung after a commit that may have added feed entries, so
//! the push subscriptions (docs/revocation-feed.md) read from their cursors. It carries
//! no data: whoever wakes reads the feed.

use tokio::sync::watch;

/// A wake-up for every reader of the feed in this process. Ringing it costs the same with
/// one waiting reader or a thousand (a `watch`: one value, each receiver notified once
/// however often it rang since it last looked), and nothing when nobody waits.
#[derive(Debug)]
pub(crate) struct FeedSignal {
    rung: watch::Sender<()>,
}

impl FeedSignal {
    pub(crate) fn new() -> Self {
        FeedSignal {
            rung: watch::Sender::new(()),
        }
    }

    /// Wakes every receiver.
    pub(crate) fn ring(&self) {
        self.rung.send_replace(());
    }

    /// A receiver woken by every later [`ring`](Self::ring).
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.rung.subscribe()
    }
}
