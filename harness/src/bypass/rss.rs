//! The NIC's receive-side scaling as `ethtool -x` shows it: its Toeplitz
//! key and indirection table. With them a bypass generator's shard picks
//! ephemeral ports whose replies the NIC steers to the shard's own queue
//! (`stack::flow::rss`, the way mTCP keeps a connection on its core), so
//! its shards need no help from the server to get their own replies. A veth
//! has no RSS (`ethtool -x` is not supported there): nothing changes.

use stack::flow::Toeplitz;

/// A NIC's RSS: the hash key and which queue each hash bucket goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicRss {
    pub key: [u8; Toeplitz::KEY_LEN],
    pub indirection: Vec<u16>,
}

impl NicRss {
    /// What a shard serving `queue` gives its interface.
    pub fn for_queue(&self, queue: u32) -> stack::RssConfig {
        stack::RssConfig {
            toeplitz: Toeplitz::new(self.key),
            indirection: self.indirection.clone(),
            queue: queue as u16,
        }
    }
}

/// The RSS of `iface` (in `netns`), or `None` where the device has none,
/// does not hash with Toeplitz, or `ethtool` cannot say.
pub fn read(netns: Option<&str>, iface: &str) -> Option<NicRss> {
    parse(&crate::sys::sh_in(netns, "ethtool", &["-x", iface]).ok()?)
}

/// Parses `ethtool -x`: the indirection table's rows (`  8:   0 1 2 3 ...`),
/// the key after "RSS hash key:" (hex bytes joined by colons, on one line or
/// several), and the hash function, which must be Toeplitz. A key longer
/// than the hash needs is cut (an IPv4 4-tuple uses its first 16 bytes).
pub fn parse(out: &str) -> Option<NicRss> {
    let mut indirection = Vec::new();
    let mut key_hex = String::new();
    let mut in_key = false;
    let mut toeplitz = None;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("RSS hash key") {
            in_key = true;
            continue;
        }
        if t.starts_with("RSS hash function") {
            in_key = false;
            continue;
        }
        if let Some(v) = t.strip_prefix("toeplitz:") {
            toeplitz = Some(v.trim() == "on");
            continue;
        }
        if in_key {
            key_hex.push_str(t);
            continue;
        }
        if let Some((row, rest)) = t.split_once(':') {
            if row.trim().parse::<usize>().is_ok() {
                for q in rest.split_whitespace() {
                    indirection.push(q.parse().ok()?);
                }
            }
        }
    }
    if toeplitz != Some(true) || indirection.is_empty() {
        return None;
    }
    let bytes: Vec<u8> = key_hex
        .split(':')
        .filter(|b| !b.is_empty())
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    if bytes.len() < 16 {
        return None;
    }
    let mut key = [0u8; Toeplitz::KEY_LEN];
    let n = bytes.len().min(key.len());
    key[..n].copy_from_slice(&bytes[..n]);
    Some(NicRss { key, indirection })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ethtool -x` of a 4-queue NIC (mlx5's layout).
    const MLX5: &str = "RX flow hash indirection table for ens1f0np0 with 4 RX ring(s):
    0:      0     1     2     3     0     1     2     3
    8:      0     1     2     3     0     1     2     3
RSS hash key:
6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
";

    #[test]
    fn reads_the_table_and_the_key_of_a_toeplitz_nic() {
        let r = parse(MLX5).unwrap();
        assert_eq!(r.indirection.len(), 16);
        assert_eq!(&r.indirection[..5], &[0, 1, 2, 3, 0]);
        assert_eq!(r.key, Toeplitz::MICROSOFT_KEY);
        let c = r.for_queue(2);
        assert_eq!((c.queue, c.indirection.len()), (2, 16));
    }

    #[test]
    fn no_rss_another_hash_or_garbage_is_none() {
        assert_eq!(
            parse("Cannot get RX ring count: Operation not supported"),
            None
        );
        assert_eq!(parse(&MLX5.replace("toeplitz: on", "toeplitz: off")), None);
        assert_eq!(parse(&MLX5.replace("6d:5a", "zz:5a")), None);
        // a 52-byte key (ice) is cut to what the hash uses
        let long = MLX5.replace("01:fa", "01:fa:01:02:03:04:05:06:07:08:09:0a:0b:0c");
        assert_eq!(parse(&long).unwrap().key, Toeplitz::MICROSOFT_KEY);
    }
}
