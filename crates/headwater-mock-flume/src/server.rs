//! The listener: one task per connection, so that a fault can close a connection
//! without an answer; routing of methods and paths as Flume's Jetty does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::jetty::bare;
use crate::source;
use crate::state::{ConnectionKill, Shared};

#[derive(Clone)]
struct ConnectionState {
    shared: Arc<Shared>,
    kill: ConnectionKill,
}

/// Accepts connections until `shutdown` fires; then closes every connection. With an
/// acceptor, each connection first completes a TLS handshake (one that fails, say for a
/// missing client certificate, just closes it).
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let kill = ConnectionKill::default();
                let app = Router::new().fallback(route).with_state(ConnectionState {
                    shared: Arc::clone(&shared),
                    kill: kill.clone(),
                });
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let service = TowerToHyperService::new(app);
                    let http = hyper::server::conn::http1::Builder::new();
                    let connection = async {
                        match acceptor {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(stream) => {
                                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                                }
                                Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                            },
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    };
                    tokio::select! {
                        () = connection => {}
                        // Dropping the connection closes the socket with no answer.
                        () = kill.fired() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn route(State(state): State<ConnectionState>, request: Request) -> Response {
    let shared = &state.shared;
    let config = &shared.config;
    let origin = request.headers().get(header::ORIGIN).cloned();
    let requested_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let mut response = match method {
        Method::OPTIONS if config.cors => StatusCode::NO_CONTENT.into_response(),
        // Flume forbids OPTIONS and TRACE with a security constraint (FLUME-2312).
        Method::OPTIONS | Method::TRACE => bare(StatusCode::FORBIDDEN),
        Method::PUT | Method::DELETE => bare(StatusCode::METHOD_NOT_ALLOWED),
        Method::GET if config.metrics && path == "/metrics" => {
            let json = shared
                .counters
                .to_json(shared.channel.size(), shared.channel.capacity());
            axum::Json(json).into_response()
        }
        Method::GET | Method::HEAD if config.static_dir.is_some() => {
            let dir = config.static_dir.clone().unwrap_or_default();
            match tower_http::services::ServeDir::new(dir)
                .oneshot(request)
                .await
            {
                Ok(response) => response.into_response(),
                Err(infallible) => match infallible {},
            }
        }
        Method::POST if path == crate::otlp::LOGS_PATH => {
            let (parts, body) = request.into_parts();
            crate::otlp::handle(shared, &state.kill, &parts.headers, body).await
        }
        // Flume's servlet handles GET (and so HEAD) exactly like POST.
        Method::POST | Method::GET | Method::HEAD => {
            let (parts, body) = request.into_parts();
            source::handle(shared, &state.kill, &path, &parts.headers, body).await
        }
        _ => bare(StatusCode::NOT_IMPLEMENTED),
    };
    if config.cors {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            origin.unwrap_or(HeaderValue::from_static("*")),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            requested_headers.unwrap_or(HeaderValue::from_static("content-type")),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Binds the listener.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
