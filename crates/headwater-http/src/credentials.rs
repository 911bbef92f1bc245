//! Request headers that change over time: a token that rotates, fetched before each
//! request and refreshed once when Flume (or the proxy in front of it) answers 401 or
//! 403.

use std::fmt;
use std::sync::Arc;

use headwater_core::MaybeSendSync;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Supplies headers for each request, such as `authorization: Bearer …` with a token
/// that expires. The transport asks before every request; on a 401 or 403 it calls
/// [`refresh`](Self::refresh) once and sends again with the new headers before the
/// outbox blocks. The values never appear in logs, `Debug` output or errors.
///
/// ```
/// use std::sync::Mutex;
/// use headwater_http::HeaderProvider;
///
/// struct Token(Mutex<String>);
///
/// #[async_trait::async_trait]
/// impl HeaderProvider for Token {
///     async fn headers(&self) -> Result<Vec<(String, String)>, String> {
///         let token = self.0.lock().unwrap().clone();
///         Ok(vec![("authorization".into(), format!("Bearer {token}"))])
///     }
///     async fn refresh(&self) -> Result<(), String> {
///         *self.0.lock().unwrap() = "a fresh token from your identity provider".into();
///         Ok(())
///     }
/// }
/// ```
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait HeaderProvider: MaybeSendSync {
    /// The headers for the next request. An error fails this request (it is retried
    /// with backoff); say what went wrong without the secret.
    async fn headers(&self) -> Result<Vec<(String, String)>, String>;

    /// The server refused the credentials: get new ones. The default does nothing.
    async fn refresh(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The provider a transport holds.
#[derive(Clone)]
pub(crate) struct Provider(pub(crate) Arc<dyn HeaderProvider>);

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeaderProvider")
    }
}

impl Provider {
    /// The provider's headers, marked sensitive.
    pub(crate) async fn headers(&self) -> Result<HeaderMap, String> {
        let mut map = HeaderMap::new();
        for (name, value) in self.0.headers().await? {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("the header provider gave an invalid header name {name:?}"))?;
            let mut header_value = HeaderValue::from_str(&value).map_err(|_| {
                format!("the header provider gave an invalid value for header {name:?}")
            })?;
            header_value.set_sensitive(true);
            map.insert(header_name, header_value);
        }
        Ok(map)
    }
}
