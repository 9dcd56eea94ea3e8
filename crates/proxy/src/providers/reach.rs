//! Where a tenant's provider may point: public addresses only, unless the
//! operator allows private ones (`routing.tenant_private_addresses`). A
//! tenant admin who could name `127.0.0.1` or `169.254.169.254` would make
//! the gateway call its own admin port or a cloud's metadata service on the
//! tenant's behalf (server-side request forgery). Checked twice: an address
//! in the URL when the provider is saved and built, and every address a
//! name resolves to when a call connects, so DNS cannot go around the first.
//! The server's own providers (the operator's configuration) may point
//! anywhere.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses a provider's calls may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    Anywhere,
    PublicOnly,
}

/// Not loopback, private, link-local, unique-local, shared (CGNAT),
/// unspecified, broadcast, documentation or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || shared
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || unique_local
                || link_local)
        }
    }
}

/// Refuses a URL whose host is a non-public address or `localhost`.
pub fn check_url(url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let refused = match bare.parse::<IpAddr>() {
        Ok(ip) => !is_public(ip),
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name.is_empty() || name == "localhost" || name.ends_with(".localhost")
        }
    };
    if refused {
        return Err(format!(
            "a tenant's provider may not point at a private or local address ({url}); \
             the operator allows it with routing.tenant_private_addresses"
        ));
    }
    Ok(())
}

/// A resolver that keeps only public addresses: a name resolving to
/// private ones only is an error, never a connection.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let why = format!("'{host}' resolves to no public address");
                return Err(why.into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "104.18.6.192", "2606:4700::6810:1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_naming_local_hosts_are_refused() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://[::1]/v1",
            "http://localhost/v1",
            "http://169.254.169.254/",
        ] {
            assert!(check_url(&url.parse().unwrap()).is_err(), "{url}");
        }
        assert!(check_url(&"https://api.openai.com/v1".parse().unwrap()).is_ok());
    }
}
