//! DeleteObjects: up to 1,000 keys, each decided and deleted as its own
//! DeleteObject would be.

use super::*;

impl Tessera {
    pub(super) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(MalformedXML, "a DeleteObjects request names at most {MAX_DELETE_KEYS} keys"));
        }
        if objects.is_empty() {
            return Err(s3_error!(MalformedXML, "a DeleteObjects request names at least one key"));
        }
        self.bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass_asked = input.bypass_governance_retention;
        let bucket = input.bucket;
        let caller = req.extensions.get::<Caller>().cloned().unwrap_or_default();
        let results: Vec<(ObjectIdentifier, Result<Deleted, S3Error>)> = futures::stream::iter(objects)
            .map(|o| {
                let bucket = bucket.clone();
                let caller = &caller;
                async move {
                    // Each key as its own DeleteObject would be decided.
                    let action = if o.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
                    let allowed = self.dir.authorize(caller, action, &bucket, Some(&o.key)).await;
                    let r = if let Err(e) = allowed {
                        Err(e)
                    } else if o.last_modified_time.is_some() || o.size.is_some() {
                        Err(s3_error!(NotImplemented, "conditional deletes accept only an ETag"))
                    } else {
                        // An `<ETag>` of `*` reaches the state machine as `*`:
                        // the key must exist.
                        let condition = o
                            .e_tag
                            .as_ref()
                            .map(|e| Condition { kind: Some(condition::Kind::IfMatch(e.value().to_owned())) });
                        let bypass = self.may_bypass(caller, bypass_asked, &bucket, &o.key).await;
                        self.delete_key(bucket, o.key.clone(), o.version_id.clone(), condition, bypass).await
                    };
                    (o, r)
                }
            })
            .buffered(16)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (o, r) in results {
            match r {
                Ok(d) if !quiet => deleted.push(DeletedObject {
                    key: Some(o.key),
                    delete_marker: d.delete_marker.then_some(true),
                    delete_marker_version_id: if d.delete_marker { d.version_id.clone() } else { None },
                    version_id: o.version_id,
                }),
                Ok(_) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: e.message().map(str::to_owned),
                    version_id: o.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }
}
