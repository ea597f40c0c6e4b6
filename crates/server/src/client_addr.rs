//! Which address a client counts as, for every per-source limit (login throttling, the
//! password-check queue's shares, open connections): one rule, so an IPv4 client cannot
//! pose as many IPv6 sources to one limit and not to another.

use std::net::IpAddr;

/// The address a client counts as, IPv4 addresses carried in IPv6 unwrapped: an
/// IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`, RFC 6052) or
/// IPv4-compatible (`::a.b.c.d`, but not `::` or `::1`) address is its IPv4 address, so
/// one IPv4 source cannot pose as many IPv6 networks.
pub(crate) fn unwrapped(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let low = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = s[..6] == [0; 6] && u32::from(low) > 1;
    if nat64 || compatible {
        IpAddr::V4(low)
    } else {
        ip
    }
}
