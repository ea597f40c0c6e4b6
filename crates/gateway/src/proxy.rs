//! Reverse-proxy mode: forwards authorized requests to the upstream (streaming bodies,
//! WebSocket upgrades, keep-alive, timeouts), identity headers replaced by the gateway's own.
//! (Being built: see issue 18, section 3.)
