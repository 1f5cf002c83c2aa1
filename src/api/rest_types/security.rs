//! The `X-API-Key` security scheme of the OpenAPI document, and the key a
//! handler passes on to the shared operations as the caller.

use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// The `X-API-Key` header: the security scheme in the document (an
/// Authorize button in Swagger UI), and the key a handler passes on as
/// the caller. Never fails: keys are checked by the middleware, and only
/// when `ENABLE_API_KEYS` is on (hence "or none" in the document).
pub struct ApiKeyHeader(pub Option<Vec<u8>>);

impl std::fmt::Debug for ApiKeyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ApiKeyHeader(..)"
        } else {
            "ApiKeyHeader(None)"
        })
    }
}

impl ApiKeyHeader {
    /// The key's bytes, if one was sent.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// The name of the security scheme in the document.
pub const API_KEY_SCHEME: &str = "APIKeyHeader";

impl<'a> ApiExtractor<'a> for ApiKeyHeader {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            API_KEY_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "An API key from the server's key file; required when the server runs with ENABLE_API_KEYS",
                ),
                name: Some("X-API-Key"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![API_KEY_SCHEME]
    }

    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        request: &'a poem::Request,
        _body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(ApiKeyHeader(
            request
                .headers()
                .get("x-api-key")
                .map(|v| v.as_bytes().to_vec()),
        ))
    }
}
