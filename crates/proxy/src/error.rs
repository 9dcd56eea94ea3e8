//! OpenAI-style JSON errors: `{"error":{"message","type","code"}}` with the
//! status a client expects, so SDKs surface them as typed exceptions.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::http::{full, Body};

/// Every error code Warden answers with. A code carries its HTTP status
/// and its OpenAI error type, so the three cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BodyReadFailed,
    ChainDisabled,
    InvalidCursor,
    InvalidJson,
    InvalidParameter,
    InvalidPluginName,
    InvalidSettings,
    InvalidPolicy,
    InvalidTask,
    InvalidTenant,
    InvalidTokenRequest,
    InvalidUser,
    MissingMessages,
    MissingModel,
    MissingReason,
    MissingTaskId,
    NoPreviousVersion,
    NothingToChange,
    PluginRejected,
    TaskExists,
    InvalidApiKey,
    AccessDenied,
    AdminRequired,
    /// The caller's role lacks the access (a viewer changing, a manager administering).
    RoleForbidden,
    GuardrailDenied,
    TaskNotAllowed,
    UserBlocked,
    NotFound,
    ModelNotFound,
    MethodNotAllowed,
    PluginInUse,
    RequestTooLarge,
    RateLimitExceeded,
    InternalError,
    UpstreamUnavailable,
    PolicyPluginFailed,
    UpstreamTimeout,
    Overloaded,
    CountersUnavailable,
    RequestTimeout,
    TrialEnded,
    SubscriptionInactive,
    SubscriptionSuspended,
    PlanLimit,
    InvalidSignature,
    InvitationGone,
}

impl ErrorCode {
    /// The `code` of the error body.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BodyReadFailed => "body_read_failed",
            Self::ChainDisabled => "chain_disabled",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidJson => "invalid_json",
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidPluginName => "invalid_plugin_name",
            Self::InvalidSettings => "invalid_settings",
            Self::InvalidPolicy => "invalid_policy",
            Self::InvalidTask => "invalid_task",
            Self::InvalidTenant => "invalid_tenant",
            Self::InvalidTokenRequest => "invalid_token_request",
            Self::InvalidUser => "invalid_user",
            Self::MissingMessages => "missing_messages",
            Self::MissingModel => "missing_model",
            Self::MissingReason => "missing_reason",
            Self::MissingTaskId => "missing_task_id",
            Self::NoPreviousVersion => "no_previous_version",
            Self::NothingToChange => "nothing_to_change",
            Self::PluginRejected => "plugin_rejected",
            Self::TaskExists => "task_exists",
            Self::InvalidApiKey => "invalid_api_key",
            Self::AccessDenied => "access_denied",
            Self::AdminRequired => "admin_required",
            Self::RoleForbidden => "role_forbidden",
            Self::GuardrailDenied => "guardrail_denied",
            Self::TaskNotAllowed => "task_not_allowed",
            Self::UserBlocked => "user_blocked",
            Self::NotFound => "not_found",
            Self::ModelNotFound => "model_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PluginInUse => "plugin_in_use",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::InternalError => "internal_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::PolicyPluginFailed => "policy_plugin_failed",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Overloaded => "overloaded",
            Self::CountersUnavailable => "counters_unavailable",
            Self::RequestTimeout => "request_timeout",
            Self::TrialEnded => "trial_ended",
            Self::SubscriptionInactive => "subscription_inactive",
            Self::SubscriptionSuspended => "subscription_suspended",
            Self::PlanLimit => "plan_limit",
            Self::InvalidSignature => "invalid_signature",
            Self::InvitationGone => "invitation_gone",
        }
    }

    pub const fn status(self) -> StatusCode {
        match self {
            Self::BodyReadFailed => StatusCode::BAD_REQUEST,
            Self::ChainDisabled => StatusCode::BAD_REQUEST,
            Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::InvalidJson => StatusCode::BAD_REQUEST,
            Self::InvalidParameter => StatusCode::BAD_REQUEST,
            Self::InvalidPluginName => StatusCode::BAD_REQUEST,
            Self::InvalidSettings => StatusCode::BAD_REQUEST,
            Self::InvalidPolicy => StatusCode::BAD_REQUEST,
            Self::InvalidTask => StatusCode::BAD_REQUEST,
            Self::InvalidTenant => StatusCode::BAD_REQUEST,
            Self::InvalidTokenRequest => StatusCode::BAD_REQUEST,
            Self::InvalidUser => StatusCode::BAD_REQUEST,
            Self::MissingMessages => StatusCode::BAD_REQUEST,
            Self::MissingModel => StatusCode::BAD_REQUEST,
            Self::MissingReason => StatusCode::BAD_REQUEST,
            Self::MissingTaskId => StatusCode::BAD_REQUEST,
            Self::NoPreviousVersion => StatusCode::BAD_REQUEST,
            Self::NothingToChange => StatusCode::BAD_REQUEST,
            Self::PluginRejected => StatusCode::BAD_REQUEST,
            Self::TaskExists => StatusCode::BAD_REQUEST,
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::AdminRequired => StatusCode::FORBIDDEN,
            Self::RoleForbidden => StatusCode::FORBIDDEN,
            Self::GuardrailDenied => StatusCode::FORBIDDEN,
            Self::TaskNotAllowed => StatusCode::FORBIDDEN,
            Self::UserBlocked => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ModelNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PluginInUse => StatusCode::CONFLICT,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::PolicyPluginFailed => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::CountersUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TrialEnded => StatusCode::PAYMENT_REQUIRED,
            Self::SubscriptionInactive => StatusCode::PAYMENT_REQUIRED,
            Self::SubscriptionSuspended => StatusCode::FORBIDDEN,
            Self::PlanLimit => StatusCode::FORBIDDEN,
            Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::InvitationGone => StatusCode::GONE,
        }
    }

    /// The OpenAI error `type`, which SDKs map to their exception classes.
    pub const fn kind(self) -> &'static str {
        match self {
            Self::BodyReadFailed => "invalid_request_error",
            Self::ChainDisabled => "invalid_request_error",
            Self::InvalidCursor => "invalid_request_error",
            Self::InvalidJson => "invalid_request_error",
            Self::InvalidParameter => "invalid_request_error",
            Self::InvalidPluginName => "invalid_request_error",
            Self::InvalidSettings => "invalid_request_error",
            Self::InvalidPolicy => "invalid_request_error",
            Self::InvalidTask => "invalid_request_error",
            Self::InvalidTenant => "invalid_request_error",
            Self::InvalidTokenRequest => "invalid_request_error",
            Self::InvalidUser => "invalid_request_error",
            Self::MissingMessages => "invalid_request_error",
            Self::MissingModel => "invalid_request_error",
            Self::MissingReason => "invalid_request_error",
            Self::MissingTaskId => "invalid_request_error",
            Self::NoPreviousVersion => "invalid_request_error",
            Self::NothingToChange => "invalid_request_error",
            Self::PluginRejected => "invalid_request_error",
            Self::TaskExists => "invalid_request_error",
            Self::InvalidApiKey => "authentication_error",
            Self::AccessDenied => "permission_error",
            Self::AdminRequired => "permission_error",
            Self::RoleForbidden => "permission_error",
            Self::GuardrailDenied => "permission_error",
            Self::TaskNotAllowed => "permission_error",
            Self::UserBlocked => "permission_error",
            Self::NotFound => "invalid_request_error",
            Self::ModelNotFound => "invalid_request_error",
            Self::MethodNotAllowed => "invalid_request_error",
            Self::PluginInUse => "invalid_request_error",
            Self::RequestTooLarge => "invalid_request_error",
            Self::RateLimitExceeded => "rate_limit_error",
            Self::InternalError => "server_error",
            Self::UpstreamUnavailable => "upstream_error",
            Self::PolicyPluginFailed => "server_error",
            Self::UpstreamTimeout => "upstream_error",
            Self::Overloaded => "server_error",
            Self::CountersUnavailable => "server_error",
            Self::RequestTimeout => "invalid_request_error",
            Self::TrialEnded => "billing_error",
            Self::SubscriptionInactive => "billing_error",
            Self::SubscriptionSuspended => "permission_error",
            Self::PlanLimit => "permission_error",
            Self::InvalidSignature => "authentication_error",
            Self::InvitationGone => "invalid_request_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// Boxed: most errors carry none, and it would double the error's size.
    pub rate_limit: Option<Box<crate::ratelimit::RateLimitInfo>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            rate_limit: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidApiKey, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed on this path",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        let message = format!("request body exceeds the limit of {limit} bytes");
        Self::new(ErrorCode::RequestTooLarge, message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimitExceeded, message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 503 with `Retry-After`: the shared quota counters (Redis) cannot be
    /// reached and the tenant's policy is to refuse rather than count
    /// nowhere.
    pub fn counters_unavailable(reason: &str) -> Self {
        let message = format!("quota counters unavailable, try again shortly: {reason}");
        let mut e = Self::new(ErrorCode::CountersUnavailable, message);
        e.retry_after_secs = Some(1);
        e
    }

    /// 503 with `Retry-After`: too much in flight; try again shortly.
    pub fn overloaded(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::Overloaded, message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    pub fn plugin_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PolicyPluginFailed, message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UpstreamUnavailable, message)
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UpstreamTimeout, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }

    pub fn body(&self) -> Bytes {
        let (kind, code) = (self.code.kind(), self.code.as_str());
        let value = serde_json::json!({
            "error": { "message": self.message, "type": kind, "code": code, "param": null }
        });
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// The same error as Anthropic's API words it, for Messages clients:
    /// `{"type":"error","error":{"type","message"}}`, Warden's code kept
    /// beside them.
    pub fn anthropic_body(&self) -> Bytes {
        let status = self.status();
        let kind = match status.as_u16() {
            400 | 405 | 408 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            _ => "api_error",
        };
        let value = serde_json::json!({
            "type": "error",
            "error": { "type": kind, "message": self.message, "code": self.code.as_str() }
        });
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// As an Anthropic-shaped response (see `anthropic_body`).
    pub fn into_anthropic_response(self) -> Response<Body> {
        let body = self.anthropic_body();
        self.into_response_with(body)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = self.body();
        self.into_response_with(body)
    }

    fn into_response_with(self, body: Bytes) -> Response<Body> {
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(info) = &self.rate_limit {
            info.apply(headers);
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
