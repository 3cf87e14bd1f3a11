//! What the AWS destination types (`sqs`, `sns`, `amazonS3`) share: their credentials
//! and region from the stored config, the service's endpoint (AWS's, or `endpointUrl`
//! for a compatible service), and one signed request (Signature Version 4, by AWS's own
//! `aws-sigv4`) sent through the engine's guarded HTTP client.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::broker::{failure, StoredConfig};
use super::SendFailure;
use crate::Engine;

/// How much of a refusing service's answer a failure reason quotes.
const QUOTED_ANSWER: usize = 300;

pub(crate) struct Aws {
    pub service: &'static str,
    pub region: String,
    access_key_id: String,
    secret_access_key: String,
    /// `endpointUrl`, without a trailing slash.
    pub endpoint: Option<String>,
}

impl Aws {
    pub fn from_config(
        engine: &Engine,
        config: &StoredConfig<'_>,
        service: &'static str,
    ) -> Result<Aws, SendFailure> {
        let region = config
            .text("region")
            .ok_or_else(|| failure("the destination's config has no region"))?
            .to_string();
        let access_key_id = config
            .text("accessKeyId")
            .ok_or_else(|| failure("the destination's config has no accessKeyId"))?
            .to_string();
        let secret_access_key = config.open_required(engine, "secretAccessKey")?;
        let endpoint = config
            .open(engine, "endpointUrl")?
            .map(|e| e.trim_end_matches('/').to_string());
        Ok(Aws {
            service,
            region,
            access_key_id,
            secret_access_key,
            endpoint,
        })
    }

    /// The service's endpoint: `endpointUrl`, else AWS's for the region.
    pub fn service_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.{}.amazonaws.com", self.service, self.region))
    }

    /// Sends one signed request and returns the answer's body, or why it failed.
    pub async fn send(
        &self,
        engine: &Engine,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<String, SendFailure> {
        let config = engine.config();
        let checked = crate::guard::check_destination(&config.destinations, config.https_only, url)
            .map_err(|blocked| failure(blocked.to_string()))?;
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "herald-destination",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            settings.payload_checksum_kind =
                aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| failure(format!("cannot sign the request: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| failure(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failure(format!("cannot sign the request: {e}")))?
            .into_parts();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a known method");
        let mut request = engine
            .client()
            .request(method, checked)
            .header("user-agent", config.user_agent.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| failure(crate::attempt::describe_error(&e, config.request_timeout)))?;
        let status = response.status();
        let mut text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        herald_core::text::truncate_utf8(&mut text, QUOTED_ANSWER);
        Err(failure(format!(
            "{} answered {}: {}",
            self.service.to_uppercase(),
            status.as_u16(),
            text.trim()
        )))
    }
}

/// The text of the first `<tag>…</tag>` in an XML answer (AWS's query protocol), for
/// error messages.
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}
