//! Listing with prefix, delimiter, start-after and max-keys, as S3 lists:
//! pure logic over a [`KeyCursor`], shared by object and upload listings.
//!
//! Rules (ListObjects V1/V2, ListMultipartUploads):
//! - entries are keys that start with `prefix` and sort after `after`;
//! - with a delimiter, a key whose remainder after the prefix contains it is
//!   rolled up into one common prefix (up to and including the delimiter);
//!   the cursor then seeks past the whole prefix in one step;
//! - a common prefix is returned only if it sorts after `after`, so a page
//!   that ended on a common prefix continues after all of its keys;
//! - keys and common prefixes together count against `max_keys`;
//!   `is_truncated` says whether anything is left; `last` is what the next
//!   request passes as marker / continuation point.

use crate::MetaError;
use crate::keys::prefix_successor;

/// What to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only entries sorting after this (marker, start-after, or a decoded
    /// continuation token).
    pub after: Option<String>,
    /// At most this many keys plus common prefixes (S3 caps it at 1000).
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage<T> {
    /// Matching entries, in key order.
    pub items: Vec<(String, T)>,
    /// Rolled-up prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// More entries remain after this page.
    pub is_truncated: bool,
    /// The last key or common prefix returned: the next page's marker.
    pub last: Option<String>,
}

/// An ordered view of one listing's key range.
pub trait KeyCursor {
    /// What each key carries.
    type Item;
    /// Positions the cursor at the first entry whose key is >= `key` (bytes).
    fn seek(&mut self, key: &[u8]) -> Result<(), MetaError>;
    /// The next entry, or `None` at the end of the range.
    fn next_entry(&mut self) -> Result<Option<(String, Self::Item)>, MetaError>;
}

/// Lists one page from `cur` according to `q`.
pub fn list_page<C: KeyCursor>(cur: &mut C, q: &ListQuery) -> Result<ListPage<C::Item>, MetaError> {
    let mut page = ListPage { items: Vec::new(), common_prefixes: Vec::new(), is_truncated: false, last: None };
    if q.max_keys == 0 {
        return Ok(page);
    }
    let after = q.after.as_deref();
    match after {
        Some(a) if a >= q.prefix.as_str() => cur.seek(a.as_bytes())?,
        _ => cur.seek(q.prefix.as_bytes())?,
    }
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut emitted = 0;
    while let Some((key, item)) = cur.next_entry()? {
        if !key.starts_with(&q.prefix) {
            if key.as_str() > q.prefix.as_str() {
                break; // past the prefix range
            }
            continue;
        }
        if after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        let rolled = delimiter
            .and_then(|d| key[q.prefix.len()..].find(d).map(|i| key[..q.prefix.len() + i + d.len()].to_owned()));
        if let Some(cp) = rolled {
            let already_returned = after.is_some_and(|a| cp.as_str() <= a);
            if !already_returned {
                if emitted == q.max_keys {
                    page.is_truncated = true;
                    break;
                }
                emitted += 1;
                page.common_prefixes.push(cp.clone());
                page.last = Some(cp.clone());
            }
            match prefix_successor(cp.as_bytes()) {
                Some(next) => cur.seek(&next)?,
                None => break,
            }
            continue;
        }
        if emitted == q.max_keys {
            page.is_truncated = true;
            break;
        }
        emitted += 1;
        page.last = Some(key.clone());
        page.items.push((key, item));
    }
    Ok(page)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A cursor over a BTreeMap, counting seeks.
    pub(crate) struct MapCursor<'a> {
        map: &'a BTreeMap<String, u32>,
        pos: Vec<u8>,
        pub seeks: usize,
    }

    impl<'a> MapCursor<'a> {
        pub(crate) fn new(map: &'a BTreeMap<String, u32>) -> Self {
            MapCursor { map, pos: Vec::new(), seeks: 0 }
        }
    }

    impl KeyCursor for MapCursor<'_> {
        type Item = u32;
        fn seek(&mut self, key: &[u8]) -> Result<(), MetaError> {
            self.seeks += 1;
            self.pos = key.to_vec();
            Ok(())
        }
        fn next_entry(&mut self) -> Result<Option<(String, u32)>, MetaError> {
            let found =
                self.map.iter().find(|(k, _)| k.as_bytes() >= self.pos.as_slice()).map(|(k, v)| (k.clone(), *v));
            if let Some((k, _)) = &found {
                self.pos = k.as_bytes().to_vec();
                self.pos.push(0);
            }
            Ok(found)
        }
    }

    fn map(keys: &[&str]) -> BTreeMap<String, u32> {
        keys.iter().enumerate().map(|(i, k)| (k.to_string(), i as u32)).collect()
    }

    fn q(prefix: &str, delim: Option<&str>, after: Option<&str>, max: usize) -> ListQuery {
        ListQuery {
            prefix: prefix.into(),
            delimiter: delim.map(Into::into),
            after: after.map(Into::into),
            max_keys: max,
        }
    }

    fn names(p: &ListPage<u32>) -> (Vec<&str>, Vec<&str>) {
        (p.items.iter().map(|(k, _)| k.as_str()).collect(), p.common_prefixes.iter().map(String::as_str).collect())
    }

    #[test]
    fn delimiter_rolls_up_and_pages_continue_after_prefixes() {
        let m = map(&["a.txt", "photos/2019/a.jpg", "photos/2019/b.jpg", "photos/2020/c.jpg", "videos/x.ts", "z"]);
        let p = list_page(&mut MapCursor::new(&m), &q("", Some("/"), None, 1000)).unwrap();
        assert_eq!(names(&p), (vec!["a.txt", "z"], vec!["photos/", "videos/"]));
        assert!(!p.is_truncated);
        let p1 = list_page(&mut MapCursor::new(&m), &q("", Some("/"), None, 2)).unwrap();
        assert_eq!(names(&p1), (vec!["a.txt"], vec!["photos/"]));
        assert!(p1.is_truncated);
        assert_eq!(p1.last.as_deref(), Some("photos/"));
        let p2 = list_page(&mut MapCursor::new(&m), &q("", Some("/"), p1.last.as_deref(), 2)).unwrap();
        assert_eq!(names(&p2), (vec!["z"], vec!["videos/"]));
        assert!(!p2.is_truncated);
        let p = list_page(&mut MapCursor::new(&m), &q("photos/", Some("/"), None, 1000)).unwrap();
        assert_eq!(names(&p), (vec![], vec!["photos/2019/", "photos/2020/"]));
    }

    #[test]
    fn a_common_prefix_costs_one_seek_however_many_keys_it_holds() {
        let mut keys: Vec<String> = (0..10_000).map(|i| format!("seg/{i:05}.ts")).collect();
        keys.push("zz".into());
        let m: BTreeMap<String, u32> = keys.into_iter().map(|k| (k, 0)).collect();
        let mut cur = MapCursor::new(&m);
        let p = list_page(&mut cur, &q("", Some("/"), None, 1000)).unwrap();
        assert_eq!(names(&p), (vec!["zz"], vec!["seg/"]));
        assert_eq!(cur.seeks, 2, "one initial seek, one past seg/");
    }

    #[test]
    fn max_keys_and_truncation() {
        let m = map(&["a", "b", "c"]);
        let p = list_page(&mut MapCursor::new(&m), &q("", None, None, 3)).unwrap();
        assert!(!p.is_truncated, "exactly max_keys left is not truncated");
        let p = list_page(&mut MapCursor::new(&m), &q("", None, None, 2)).unwrap();
        assert!(p.is_truncated);
        assert_eq!(p.last.as_deref(), Some("b"));
        let p = list_page(&mut MapCursor::new(&m), &q("", None, Some("b"), 2)).unwrap();
        assert_eq!(names(&p).0, vec!["c"]);
        let p = list_page(&mut MapCursor::new(&m), &q("", None, None, 0)).unwrap();
        assert!(p.items.is_empty() && !p.is_truncated);
        let p = list_page(&mut MapCursor::new(&m), &q("b", None, None, 10)).unwrap();
        assert_eq!(names(&p).0, vec!["b"]);
        let p = list_page(&mut MapCursor::new(&m), &q("b", None, Some("a"), 10)).unwrap();
        assert_eq!(names(&p).0, vec!["b"], "a marker before the prefix starts at the prefix");
    }
}
