//! Virtual-hosted-style addressing.

use super::*;

/// Virtual-hosted-style addressing: `<bucket>.<domain>[:port]` names a
/// bucket; the bare domain, and any host that is not under a configured
/// domain (an IP address, `localhost`), is path style.
pub(super) struct VirtualHosts {
    pub(super) domains: Vec<String>,
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for d in &self.domains {
            if name.eq_ignore_ascii_case(d) {
                return Ok(s3s::host::VirtualHost::new(d.as_str()));
            }
            if name.len() > d.len() + 1
                && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
                && name.as_bytes()[name.len() - d.len() - 1] == b'.'
            {
                let bucket = &name[..name.len() - d.len() - 1];
                return Ok(s3s::host::VirtualHost::new(d.as_str()).with_bucket(bucket));
            }
        }
        Ok(s3s::host::VirtualHost::new(name))
    }
}
