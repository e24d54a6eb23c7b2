//! Object and bucket tags: `x-amz-tagging` on PutObject, CopyObject
//! (`x-amz-tagging-directive`) and CreateMultipartUpload, the tag count on
//! GET, and Put/Get/DeleteObjectTagging and BucketTagging. Tags are checked
//! as S3 checks them (`400 InvalidTag`): at most 10 per object and 50 per
//! bucket, keys of 1–128 and values of 0–256 characters from letters,
//! digits, spaces and `+ - = . _ : / @`, no key twice, none starting with
//! `aws:`.

use super::*;

/// Most tags on an object.
pub(super) const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on a bucket.
pub(super) const MAX_BUCKET_TAGS: usize = 50;

fn invalid(m: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, m.to_string())
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c)
}

/// Checks a tag set (at most `max` tags).
pub(super) fn check_tags(tags: &[pb::Header], max: usize) -> S3Result<()> {
    if tags.len() > max {
        return Err(invalid(format!("at most {max} tags are allowed")));
    }
    for (i, t) in tags.iter().enumerate() {
        let (k, v) = (&t.name, &t.value);
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid("a tag key is 1 to 128 characters"));
        }
        if v.chars().count() > 256 {
            return Err(invalid("a tag value is at most 256 characters"));
        }
        if !k.chars().chain(v.chars()).all(allowed) {
            return Err(invalid("tags allow letters, digits, spaces and + - = . _ : / @ only"));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("System tags cannot be added/updated by requester"));
        }
        if tags[..i].iter().any(|o| o.name == *k) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub(super) fn tags_of_header(h: Option<&str>) -> S3Result<Vec<pb::Header>> {
    let Some(h) = h else { return Ok(Vec::new()) };
    let tags: Vec<pb::Header> =
        crate::unenforced::query_pairs(h).map(|(name, value)| pb::Header { name, value }).collect();
    check_tags(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

/// The tags of a `<Tagging>` document.
pub(super) fn tags_of_set(set: Vec<Tag>, max: usize) -> S3Result<Vec<pb::Header>> {
    let tags = set
        .into_iter()
        .map(|t| match (t.key, t.value) {
            (Some(name), value) => Ok(pb::Header { name, value: value.unwrap_or_default() }),
            (None, _) => Err(invalid("a tag without a key")),
        })
        .collect::<S3Result<Vec<_>>>()?;
    check_tags(&tags, max)?;
    Ok(tags)
}

pub(super) fn tag_set(tags: &[pb::Header]) -> Vec<Tag> {
    tags.iter().map(|t| Tag { key: Some(t.name.clone()), value: Some(t.value.clone()) }).collect()
}

/// The `x-amz-tagging-count` of an object: its number of tags, when any.
pub(super) fn tag_count(rec: &ObjectRecord) -> Option<i32> {
    (!rec.tags.is_empty()).then_some(rec.tags.len() as i32)
}

/// A copy's tags: the source's (`COPY`, the default) or the request's
/// (`REPLACE`). Tags given with `COPY` would be ignored: refused.
pub(super) fn copy_tags(
    src: &ObjectRecord,
    directive: Option<&TaggingDirective>,
    header: Option<&str>,
) -> S3Result<Vec<pb::Header>> {
    match directive.map(TaggingDirective::as_str) {
        None | Some(TaggingDirective::COPY) => {
            if header.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-tagging on a copy needs x-amz-tagging-directive: REPLACE (COPY keeps the source's tags)"
                ));
            }
            Ok(src.tags.clone())
        }
        Some(TaggingDirective::REPLACE) => tags_of_header(header),
        Some(other) => Err(s3_error!(InvalidArgument, "Unknown tagging directive {other}")),
    }
}

impl Tessera {
    pub(super) async fn get_object_tagging_op(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        Ok(S3Response::new(GetObjectTaggingOutput { tag_set: tag_set(&rec.tags), version_id: shown_version(&rec) }))
    }

    pub(super) async fn put_object_tagging_op(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let version_id = version_arg(input.version_id.as_deref())?.to_owned();
        let tags = tags_of_set(input.tagging.tag_set, MAX_OBJECT_TAGS)?;
        let shown = input.version_id.clone();
        let set = pb::SetObjectTags { bucket: input.bucket, key: input.key, tags, version_id };
        self.write_cmd(command::Op::SetObjectTags(set)).await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id: shown }))
    }

    pub(super) async fn delete_object_tagging_op(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version_id = version_arg(input.version_id.as_deref())?.to_owned();
        let shown = input.version_id.clone();
        let set = pb::SetObjectTags { bucket: input.bucket, key: input.key, tags: Vec::new(), version_id };
        self.write_cmd(command::Op::SetObjectTags(set)).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: shown }))
    }

    pub(super) async fn get_bucket_tagging_op(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if b.tags.is_empty() {
            return Err(probes::not_configured(S3ErrorCode::NoSuchTagSet, "tag set"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tag_set(&b.tags) }))
    }

    pub(super) async fn put_bucket_tagging_op(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let tags = tags_of_set(input.tagging.tag_set, MAX_BUCKET_TAGS)?;
        self.write_cmd(command::Op::SetBucketTags(pb::SetBucketTags { bucket: input.bucket, tags })).await?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(super) async fn delete_bucket_tagging_op(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        self.write_cmd(command::Op::SetBucketTags(pb::SetBucketTags { bucket, tags: Vec::new() })).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &str, v: &str) -> pb::Header {
        pb::Header { name: k.into(), value: v.into() }
    }

    #[test]
    fn tags_are_checked_as_s3_checks_them() {
        assert!(check_tags(&[h("team", "video"), h("env", "prod/eu-1 @x")], 10).is_ok());
        assert!(check_tags(&[h("k", "")], 10).is_ok(), "an empty value is allowed");
        let eleven: Vec<pb::Header> = (0..11).map(|i| h(&format!("k{i}"), "v")).collect();
        for bad in [
            eleven,
            vec![h("", "v")],
            vec![h(&"k".repeat(129), "v")],
            vec![h("k", &"v".repeat(257))],
            vec![h("k", "v"), h("k", "w")],
            vec![h("aws:created", "v")],
            vec![h("k", "semi;colon")],
        ] {
            let e = check_tags(&bad, 10).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidTag, "{bad:?}");
        }
        let parsed = tags_of_header(Some("team=video&note=a%20b%2Bc&empty=")).unwrap();
        assert_eq!(parsed, vec![h("team", "video"), h("note", "a b+c"), h("empty", "")]);
        assert!(tags_of_header(Some("a=1&a=2")).is_err());
    }
}
