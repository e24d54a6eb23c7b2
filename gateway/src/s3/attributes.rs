//! GetObjectAttributes: what HEAD tells, and the part list of a multipart
//! object, in one XML answer.

use super::*;

/// The attribute names S3 knows (`x-amz-object-attributes`).
const KNOWN: [&str; 5] = [
    ObjectAttributes::CHECKSUM,
    ObjectAttributes::ETAG,
    ObjectAttributes::OBJECT_PARTS,
    ObjectAttributes::OBJECT_SIZE,
    ObjectAttributes::STORAGE_CLASS,
];

impl Tessera {
    pub(super) async fn object_attributes(
        &self,
        input: GetObjectAttributesInput,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let asked: Vec<&str> = input.object_attributes.iter().map(|a| a.as_str()).collect();
        if asked.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
            ));
        }
        if let Some(bad) = asked.iter().find(|a| !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(a))) {
            return Err(s3_error!(InvalidArgument, "Invalid attribute name specified: {bad}"));
        }
        let max_parts = match input.max_parts {
            None => 1000,
            Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-parts cannot be negative")),
            Some(n) => n.min(1000),
        };
        let marker = match input.part_number_marker {
            None => 0,
            Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "part-number-marker cannot be negative")),
            Some(n) => n,
        };
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        // SSE-C: the attributes, too, need the object's key.
        let customer = customer_of!(input)?;
        self.data_key(rec.sse.as_ref(), &input.bucket, &input.key, customer.as_ref())?;
        let want = |name: &str| asked.iter().any(|a| a.eq_ignore_ascii_case(name));
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(ts(rec.last_modified_ms)),
            version_id: shown_version(&rec),
            ..Default::default()
        };
        if want(ObjectAttributes::ETAG) {
            out.e_tag = Some(etag(&rec.etag));
        }
        if want(ObjectAttributes::OBJECT_SIZE) {
            out.object_size = Some(rec.size as i64);
        }
        if want(ObjectAttributes::STORAGE_CLASS) {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if want(ObjectAttributes::CHECKSUM) && !rec.checksums.is_empty() {
            // Of all the bytes (FULL_OBJECT), or of the parts' (COMPOSITE).
            let mut c = checksum_struct(&rec.checksums);
            c.checksum_type = checksum_type_of(&rec.checksums);
            out.checksum = Some(c);
        }
        if want(ObjectAttributes::OBJECT_PARTS) && !rec.parts.is_empty() {
            let after: Vec<&pb::PartRef> =
                rec.parts.iter().filter(|p| i64::from(p.number) > i64::from(marker)).collect();
            let page = &after[..after.len().min(max_parts as usize)];
            // As S3: the parts themselves only when they carry checksums.
            let listed = rec.parts.iter().any(|p| !p.checksums.is_empty()).then(|| {
                page.iter()
                    .map(|p| {
                        let mut o = ObjectPart {
                            part_number: Some(p.number as i32),
                            size: Some(p.size as i64),
                            ..Default::default()
                        };
                        copy_checksums!(o, &p.checksums);
                        o
                    })
                    .collect()
            });
            out.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(rec.parts.len() as i32),
                part_number_marker: Some(marker),
                next_part_number_marker: page.last().map(|p| p.number as i32),
                max_parts: Some(max_parts),
                is_truncated: Some(after.len() > page.len()),
                parts: listed,
            });
        }
        Ok(S3Response::new(out))
    }
}
