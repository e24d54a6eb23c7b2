//! Both sides of an import listed in key order (every version, or the
//! current ones) and paired key by key.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::DateTime;

use super::{Failure, failure};

// ------------------------------------------------------------- listing

/// One version of a key (or its only one), as a listing shows it.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) version: Option<String>,
    pub(super) size: u64,
    pub(super) etag: String,
    /// Nanoseconds since the epoch.
    pub(super) modified: i128,
    pub(super) marker: bool,
}

/// A key with its versions, oldest first.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) key: String,
    pub(super) entries: Vec<Entry>,
}

fn nanos(d: Option<&DateTime>) -> i128 {
    d.map_or(0, |d| i128::from(d.secs()) * 1_000_000_000 + i128::from(d.subsec_nanos()))
}

/// The keys of one bucket in key order, with every version or only the
/// current one.
pub(super) struct Lister {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) versions: bool,
    pub(super) ready: std::collections::VecDeque<Group>,
    /// The last key of the page before: its versions may go on in the next.
    pub(super) open: Option<Group>,
    pub(super) token: Option<String>,
    pub(super) version_marker: Option<String>,
    pub(super) done: bool,
}

impl Lister {
    pub(super) fn new(client: &Client, bucket: &str, prefix: &str, versions: bool) -> Lister {
        Lister {
            client: client.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            versions,
            ready: Default::default(),
            open: None,
            token: None,
            version_marker: None,
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Result<Option<Group>, Failure> {
        loop {
            if let Some(g) = self.ready.pop_front() {
                return Ok(Some(g));
            }
            if self.done {
                return Ok(None);
            }
            if self.versions {
                self.page_of_versions().await?;
            } else {
                self.page_of_objects().await?;
            }
        }
    }

    async fn page_of_objects(&mut self) -> Result<(), Failure> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .set_continuation_token(self.token.take())
            .send()
            .await
            .map_err(|e| failure(&format!("list s3://{}", self.bucket), e))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            self.ready.push_back(Group {
                key: key.to_owned(),
                entries: vec![Entry {
                    version: None,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or("").to_owned(),
                    modified: nanos(o.last_modified()),
                    marker: false,
                }],
            });
        }
        self.token = page.next_continuation_token().map(str::to_owned);
        self.done = !page.is_truncated().unwrap_or(false) || self.token.is_none();
        Ok(())
    }

    async fn page_of_versions(&mut self) -> Result<(), Failure> {
        let page = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .set_key_marker(self.token.take())
            .set_version_id_marker(self.version_marker.take())
            .send()
            .await
            .map_err(|e| failure(&format!("list versions of s3://{}", self.bucket), e))?;
        // Versions and delete markers come in two lists, each newest first
        // within a key: (key, time, current, place in its list, entry).
        let mut all: Vec<(String, i128, bool, usize, Entry)> = Vec::new();
        for (i, v) in page.versions().iter().enumerate() {
            let Some(key) = v.key() else { continue };
            let e = Entry {
                version: v.version_id().map(str::to_owned),
                size: v.size().unwrap_or(0).max(0) as u64,
                etag: v.e_tag().unwrap_or("").to_owned(),
                modified: nanos(v.last_modified()),
                marker: false,
            };
            all.push((key.to_owned(), e.modified, v.is_latest().unwrap_or(false), i, e));
        }
        for (i, m) in page.delete_markers().iter().enumerate() {
            let Some(key) = m.key() else { continue };
            let e = Entry {
                version: m.version_id().map(str::to_owned),
                size: 0,
                etag: String::new(),
                modified: nanos(m.last_modified()),
                marker: true,
            };
            all.push((key.to_owned(), e.modified, m.is_latest().unwrap_or(false), i, e));
        }
        // Key order, then newest first (the current version first); a key's
        // versions may go on in the next page, older still. A key's entries
        // are turned oldest first once it is complete.
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)).then(a.3.cmp(&b.3)));
        for (key, _, _, _, e) in all {
            match &mut self.open {
                Some(g) if g.key == key => g.entries.push(e),
                _ => {
                    if let Some(mut done) = self.open.take() {
                        done.entries.reverse();
                        self.ready.push_back(done);
                    }
                    self.open = Some(Group { key, entries: vec![e] });
                }
            }
        }
        self.token = page.next_key_marker().map(str::to_owned);
        self.version_marker = page.next_version_id_marker().map(str::to_owned);
        self.done = !page.is_truncated().unwrap_or(false) || self.token.is_none();
        if self.done
            && let Some(mut g) = self.open.take()
        {
            g.entries.reverse();
            self.ready.push_back(g);
        }
        Ok(())
    }
}

/// The two sides of one key.
pub(super) struct Pair {
    pub(super) key: String,
    pub(super) source: Vec<Entry>,
    pub(super) target: Vec<Entry>,
}

/// Source keys in order, each with what the target holds under it.
pub(super) struct Merge {
    pub(super) source: Lister,
    pub(super) target: Lister,
    pub(super) next_target: Option<Group>,
    pub(super) started: bool,
}

impl Merge {
    /// The keys under `prefix` of the source bucket, paired with the target's.
    pub(super) fn new(source: (&Client, &str), target: (&Client, &str), prefix: &str, versions: bool) -> Merge {
        Merge {
            source: Lister::new(source.0, source.1, prefix, versions),
            target: Lister::new(target.0, target.1, prefix, versions),
            next_target: None,
            started: false,
        }
    }

    pub(super) async fn next(&mut self) -> Result<Option<Pair>, Failure> {
        if !self.started {
            self.next_target = self.target.next().await?;
            self.started = true;
        }
        let Some(s) = self.source.next().await? else { return Ok(None) };
        while self.next_target.as_ref().is_some_and(|t| t.key < s.key) {
            self.next_target = self.target.next().await?;
        }
        let target = match &self.next_target {
            Some(t) if t.key == s.key => {
                let t = self.next_target.take().map(|t| t.entries).unwrap_or_default();
                self.next_target = self.target.next().await?;
                t
            }
            _ => Vec::new(),
        };
        Ok(Some(Pair { key: s.key, source: s.entries, target }))
    }
}

/// Whether the target's version holds what the source's does.
pub(super) fn same(s: &Entry, t: &Entry) -> bool {
    if s.marker || t.marker {
        return s.marker == t.marker;
    }
    // A multipart source object whose part sizes could not be read is
    // copied with other parts: its ETag differs, so size and age decide.
    s.size == t.size && (s.etag == t.etag || (s.etag.contains('-') && t.modified >= s.modified))
}

/// How many of the source's versions (oldest first) the target already has.
pub(super) fn copied_prefix(p: &Pair) -> usize {
    p.source.iter().zip(&p.target).take_while(|(s, t)| same(s, t)).count()
}
