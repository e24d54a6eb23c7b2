//! Put/GetBucketNotificationConfiguration: queue configurations whose ARN
//! names a webhook target registered through the admin API
//! (`arn:tessera:sqs::<name>:webhook`), for ObjectCreated and ObjectRemoved
//! events with prefix and suffix filters. The state machine appends the
//! events to its outbox with each write; the metadata leader delivers them
//! (metadata/src/notify.rs). Topics, Lambda functions and EventBridge are
//! not offered: refused.

use super::*;

/// The target a queue ARN names.
fn target_of(arn: &str) -> S3Result<String> {
    arn.strip_prefix("arn:tessera:sqs::")
        .and_then(|r| r.strip_suffix(":webhook"))
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .map(str::to_owned)
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Unable to validate the following destination configurations: {arn} (a target is arn:tessera:sqs::<name>:webhook)"
            )
        })
}

fn rule_of(i: usize, q: QueueConfiguration) -> S3Result<pb::NotifyRule> {
    let mut rule = pb::NotifyRule {
        id: q.id.unwrap_or_else(|| format!("rule-{i}")),
        target: target_of(&q.queue_arn)?,
        events: q.events.into_iter().map(String::from).collect(),
        ..Default::default()
    };
    if rule.events.is_empty() {
        return Err(s3_error!(InvalidArgument, "a queue configuration names at least one event"));
    }
    if let Some(bad) = rule.events.iter().find(|e| !tessera_rpc::names::NOTIFY_EVENTS.contains(&e.as_str())) {
        return Err(s3_error!(InvalidArgument, "The event {bad} is not supported for notifications"));
    }
    for f in q.filter.and_then(|f| f.key).and_then(|k| k.filter_rules).unwrap_or_default() {
        let value = f.value.unwrap_or_default();
        let slot = match f.name.as_ref().map(|n| n.as_str().to_ascii_lowercase()).as_deref() {
            Some("prefix") => &mut rule.prefix,
            Some("suffix") => &mut rule.suffix,
            _ => return Err(s3_error!(InvalidArgument, "filter rule name must be either prefix or suffix")),
        };
        if !slot.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "Cannot specify more than one prefix (or suffix) rule in a filter."
            ));
        }
        *slot = value;
    }
    Ok(rule)
}

impl Tessera {
    pub(super) async fn put_notifications_op(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        let input = req.input;
        let cfg = input.notification_configuration;
        let others = cfg.topic_configurations.as_ref().is_some_and(|t| !t.is_empty())
            || cfg.lambda_function_configurations.as_ref().is_some_and(|l| !l.is_empty())
            || cfg.event_bridge_configuration.is_some();
        if others {
            return Err(s3_error!(
                NotImplemented,
                "only queue configurations naming webhook targets (arn:tessera:sqs::<name>:webhook) are supported"
            ));
        }
        let rules: Vec<pb::NotifyRule> = cfg
            .queue_configurations
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, q)| rule_of(i, q))
            .collect::<S3Result<_>>()?;
        self.bucket(&input.bucket).await?;
        let set = pb::SetBucketNotifications { bucket: input.bucket, rules };
        self.write_cmd(command::Op::SetBucketNotifications(set)).await?;
        Ok(S3Response::new(PutBucketNotificationConfigurationOutput::default()))
    }

    pub(super) async fn get_notifications_op(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        let queues: Vec<QueueConfiguration> = b
            .notifications
            .iter()
            .map(|r| {
                let mut rules = Vec::new();
                for (name, value) in [(FilterRuleName::PREFIX, &r.prefix), (FilterRuleName::SUFFIX, &r.suffix)] {
                    if !value.is_empty() {
                        rules.push(FilterRule {
                            name: Some(FilterRuleName::from_static(name)),
                            value: Some(value.clone()),
                        });
                    }
                }
                QueueConfiguration {
                    id: Some(r.id.clone()),
                    queue_arn: format!("arn:tessera:sqs::{}:webhook", r.target),
                    events: r.events.iter().cloned().map(Event::from).collect(),
                    filter: (!rules.is_empty()).then_some(NotificationConfigurationFilter {
                        key: Some(S3KeyFilter { filter_rules: Some(rules) }),
                    }),
                }
            })
            .collect();
        Ok(S3Response::new(GetBucketNotificationConfigurationOutput {
            queue_configurations: (!queues.is_empty()).then_some(queues),
            ..Default::default()
        }))
    }
}
