//! An endpoint's transformation, applied to a delivery before it is signed: the script
//! (run by `herald-transform`'s pool) may change the body, the URL, the method and add
//! headers, or cancel the delivery. What it returns is then sent like any delivery:
//! signed over the new body, through the same SSRF guard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::metrics::TransformOutcome;
use herald_store::DeliveryJob;
use herald_transform::{Method, Outcome, Request};

use crate::attempt::AttemptOutcome;
use crate::Engine;

/// What the transformation made of a delivery.
pub(crate) enum Transformed {
    /// Send this delivery (the job with the script's changes) with this method.
    Send(Box<DeliveryJob>, reqwest::Method),
    /// The script cancelled it.
    Cancel(Duration),
    /// The script failed: this is the failed attempt to record.
    Failed(AttemptOutcome),
}

impl Engine {
    /// Runs `job`'s transformation (the job must have one).
    pub(crate) async fn transform(&self, job: &DeliveryJob) -> Transformed {
        let Some(transformation) = &job.transformation else {
            unreachable!("transform is only called for a job with a transformation")
        };
        let code: Arc<str> = Arc::from(transformation.code.as_deref().unwrap_or_default());
        let request = Request {
            code,
            method: Method::Post,
            url: job.url.clone(),
            event_type: job.event_type.clone(),
            payload: job.payload.clone(),
            variables: Arc::new(transformation.variables.clone()),
        };
        let started = Instant::now();
        let result = self
            .inner
            .config
            .transforms
            .run(Some(&job.endpoint_id), request)
            .await;
        self.inner.config.metrics.transformation(match &result {
            Ok(Outcome::Send(_)) => TransformOutcome::Sent,
            Ok(Outcome::Cancel) => TransformOutcome::Cancelled,
            Err(_) => TransformOutcome::Failed,
        });
        match result {
            Ok(Outcome::Cancel) => Transformed::Cancel(started.elapsed()),
            Ok(Outcome::Send(webhook)) => {
                let mut changed = job.clone();
                changed.url = webhook.url;
                changed.payload = Arc::from(webhook.payload);
                // The script's headers win over the endpoint's and the message's.
                changed.headers.retain(|(name, _)| {
                    !webhook
                        .headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name))
                });
                changed.headers.extend(webhook.headers);
                let method = match webhook.method {
                    Method::Post => reqwest::Method::POST,
                    Method::Put => reqwest::Method::PUT,
                };
                Transformed::Send(Box::new(changed), method)
            }
            Err(error) => Transformed::Failed(AttemptOutcome {
                status_code: 0,
                response: error.to_string(),
                duration: started.elapsed(),
                retry_after: None,
            }),
        }
    }
}
