//! Bucket settings that govern access: the bucket policy, CORS rules and
//! the public access block (the `S3` impl in mod.rs delegates here).

use super::*;

impl Tessera {
    pub(super) async fn put_bucket_policy_op(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        let b = self.bucket(&input.bucket).await?;
        let parsed = crate::policy::Policy::parse(&input.policy, crate::policy::Kind::Bucket, Some(&input.bucket))
            .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
        if b.public_access_block.is_some_and(|p| p.block_public_policy) && parsed.is_public() {
            return Err(s3_error!(AccessDenied, "Access Denied: BlockPublicPolicy refuses a public policy"));
        }
        let set = pb::SetBucketPolicy { bucket: input.bucket.clone(), policy: input.policy };
        self.write_cmd(command::Op::SetBucketPolicy(set)).await?;
        self.dir.forget_bucket(&input.bucket);
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy_op(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if b.policy.is_empty() {
            return Err(probes::no_policy());
        }
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(b.policy) }))
    }

    pub(super) async fn delete_bucket_policy_op(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let set = pb::SetBucketPolicy { bucket: bucket.clone(), policy: String::new() };
        self.write_cmd(command::Op::SetBucketPolicy(set)).await?;
        self.dir.forget_bucket(&bucket);
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy_status_op(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if b.policy.is_empty() {
            return Err(probes::no_policy());
        }
        let public = crate::policy::Policy::parse(&b.policy, crate::policy::Kind::Bucket, Some(&b.name))
            .map(|p| p.is_public())
            .unwrap_or(false);
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus { is_public: Some(public) }),
        }))
    }

    pub(super) async fn get_bucket_cors_op(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if b.cors.is_empty() {
            return Err(probes::not_configured(S3ErrorCode::NoSuchCORSConfiguration, "CORS configuration"));
        }
        let rules = b
            .cors
            .into_iter()
            .map(|r| CORSRule {
                id: (!r.id.is_empty()).then_some(r.id),
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                max_age_seconds: (r.max_age_seconds >= 0).then_some(r.max_age_seconds),
            })
            .collect();
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules) }))
    }

    pub(super) async fn put_bucket_cors_op(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let rules: Vec<pb::CorsRule> = input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(|r| pb::CorsRule {
                id: r.id.unwrap_or_default(),
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds.unwrap_or(-1),
            })
            .collect();
        crate::cors::validate(&rules).map_err(|m| s3_error!(InvalidRequest, "{m}"))?;
        let set = pb::SetBucketCors { bucket: input.bucket.clone(), rules };
        self.write_cmd(command::Op::SetBucketCors(set)).await?;
        self.dir.forget_bucket(&input.bucket);
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn delete_bucket_cors_op(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        self.write_cmd(command::Op::SetBucketCors(pb::SetBucketCors { bucket: bucket.clone(), rules: Vec::new() }))
            .await?;
        self.dir.forget_bucket(&bucket);
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }

    pub(super) async fn get_public_access_block_op(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        let Some(p) = b.public_access_block else { return Err(probes::no_public_access_block()) };
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(p.block_public_acls),
                ignore_public_acls: Some(p.ignore_public_acls),
                block_public_policy: Some(p.block_public_policy),
                restrict_public_buckets: Some(p.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn put_public_access_block_op(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let c = input.public_access_block_configuration;
        let block = pb::PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        let set = pb::SetPublicAccessBlock { bucket: input.bucket.clone(), block: Some(block) };
        self.write_cmd(command::Op::SetPublicAccessBlock(set)).await?;
        self.dir.forget_bucket(&input.bucket);
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn delete_public_access_block_op(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let set = pb::SetPublicAccessBlock { bucket: bucket.clone(), block: None };
        self.write_cmd(command::Op::SetPublicAccessBlock(set)).await?;
        self.dir.forget_bucket(&bucket);
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }
}
