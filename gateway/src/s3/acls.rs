//! ACL operations: Get/PutBucketAcl, Get/PutObjectAcl, the bucket's object
//! ownership, and the ACL a write request sets (`x-amz-acl`,
//! `x-amz-grant-*`), checked against the bucket's settings before anything
//! is stored. What grants mean is crate::acl.

use super::*;
use crate::acl;

/// The ACL a request sets on bucket `b` or on an object in it — from its
/// headers or an `AccessControlPolicy` body — with owner-only ACLs stored
/// as none. Refused before anything is stored: a grant beyond the owner's
/// in a bucket with ACLs disabled (AccessControlListNotSupported), a public
/// grant under BlockPublicAcls (AccessDenied).
pub(super) fn requested_acl(
    b: &pb::BucketRecord,
    headers: &http::HeaderMap,
    body: Option<&AccessControlPolicy>,
) -> S3Result<Option<Vec<pb::AclGrant>>> {
    let acl = match (acl::from_headers(headers, &b.owner)?, body) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(UnexpectedContent, "an ACL is given by headers or by the body, not both"));
        }
        (Some(a), None) => a,
        (None, Some(p)) => acl::from_policy(p, &b.owner)?,
        (None, None) => return Ok(None),
    };
    let owner_only = acl::owner_only(&acl, &b.owner);
    if b.acl_disabled && !owner_only {
        return Err(s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs"));
    }
    if acl::is_public(&acl) && b.public_access_block.is_some_and(|p| p.block_public_acls) {
        return Err(s3_error!(AccessDenied, "Access Denied: BlockPublicAcls refuses a public ACL"));
    }
    Ok(Some(if owner_only { Vec::new() } else { acl }))
}

fn ownership(acl_disabled: bool) -> OwnershipControls {
    let o = if acl_disabled { ObjectOwnership::BUCKET_OWNER_ENFORCED } else { ObjectOwnership::BUCKET_OWNER_PREFERRED };
    OwnershipControls { rules: vec![OwnershipControlsRule { object_ownership: ObjectOwnership::from_static(o) }] }
}

impl Tessera {
    pub(super) async fn get_bucket_acl_op(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        let stored = if b.acl_disabled { &[][..] } else { &b.acl[..] };
        let (grants, owner) = acl::to_dto(stored, &b.owner);
        Ok(S3Response::new(GetBucketAclOutput { grants: Some(grants), owner: Some(owner) }))
    }

    pub(super) async fn put_bucket_acl_op(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        let acl = requested_acl(&b, &req.headers, req.input.access_control_policy.as_ref())?
            .ok_or_else(|| s3_error!(MissingSecurityHeader, "give the ACL by x-amz-acl, x-amz-grant-* or a body"))?;
        let set = pb::SetBucketAcl { bucket: b.name.clone(), acl };
        self.write_cmd(command::Op::SetBucketAcl(set)).await?;
        self.dir.forget_bucket(&b.name);
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn get_object_acl_op(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let b = self.bucket(&input.bucket).await?;
        let o = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let stored = if b.acl_disabled { &[][..] } else { &o.acl[..] };
        let (grants, owner) = acl::to_dto(stored, &b.owner);
        Ok(S3Response::new(GetObjectAclOutput { grants: Some(grants), owner: Some(owner), ..Default::default() }))
    }

    pub(super) async fn put_object_acl_op(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let version_id = version_arg(req.input.version_id.as_deref())?.to_owned();
        let b = self.bucket(&req.input.bucket).await?;
        let acl = requested_acl(&b, &req.headers, req.input.access_control_policy.as_ref())?
            .ok_or_else(|| s3_error!(MissingSecurityHeader, "give the ACL by x-amz-acl, x-amz-grant-* or a body"))?;
        let set = pb::SetObjectAcl { bucket: b.name.clone(), key: req.input.key.clone(), acl, version_id };
        self.write_cmd(command::Op::SetObjectAcl(set)).await?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_ownership_controls_op(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput { ownership_controls: Some(ownership(b.acl_disabled)) }))
    }

    pub(super) async fn put_bucket_ownership_controls_op(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = req.input;
        let b = self.bucket(&input.bucket).await?;
        let [rule] = &input.ownership_controls.rules[..] else {
            return Err(s3_error!(MalformedXML, "ownership controls hold exactly one rule"));
        };
        let acl_disabled = match rule.object_ownership.as_str() {
            ObjectOwnership::BUCKET_OWNER_ENFORCED => true,
            ObjectOwnership::BUCKET_OWNER_PREFERRED => false,
            ObjectOwnership::OBJECT_WRITER => {
                return Err(s3_error!(NotImplemented, "objects always belong to the bucket's owner"));
            }
            other => return Err(s3_error!(MalformedXML, "unknown object ownership {other:?}")),
        };
        self.set_ownership(&b, acl_disabled).await?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }

    pub(super) async fn delete_bucket_ownership_controls_op(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        self.set_ownership(&b, false).await?;
        Ok(S3Response::new(DeleteBucketOwnershipControlsOutput::default()))
    }

    async fn set_ownership(&self, b: &pb::BucketRecord, acl_disabled: bool) -> S3Result<()> {
        // As AWS: ACLs cannot be disabled while the bucket ACL grants
        // anyone but the owner.
        if acl_disabled && !acl::owner_only(&b.acl, &b.owner) {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            ));
        }
        let set = pb::SetBucketOwnership { bucket: b.name.clone(), acl_disabled };
        self.write_cmd(command::Op::SetBucketOwnership(set)).await?;
        self.dir.forget_bucket(&b.name);
        Ok(())
    }
}
