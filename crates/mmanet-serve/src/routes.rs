//! The HTTP routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use mmanet_deploy::{DeployError, ModelMetadata, Output, Prepared, RawInput};
use serde_json::{Value, json};

use crate::batcher::{Job, Queue, Refused};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{Instance, RequestValue, parse_request, sniff_extension};
use crate::{ServeConfig, error_chain};

pub(crate) struct State {
    pub(crate) metadata: Arc<ModelMetadata>,
    pub(crate) queue: Queue,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
    /// Uploaded files go here, one per input, removed once decoded.
    pub(crate) uploads: tempfile::TempDir,
    pub(crate) upload_seq: AtomicU64,
}

type Shared = Arc<State>;

pub(crate) fn router(state: Shared, cfg: &ServeConfig) -> Router {
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/model", get(model))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(cfg.max_body))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(cfg.read_timeout))
        .with_state(state)
}

async fn readyz(axum::extract::State(s): axum::extract::State<Shared>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(json!({"ready": true}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false}))).into_response()
    }
}

async fn metrics(axum::extract::State(s): axum::extract::State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

async fn model(axum::extract::State(s): axum::extract::State<Shared>) -> Json<Value> {
    let m = &s.metadata;
    let modalities: Vec<Value> = m
        .input_spec
        .modalities
        .iter()
        .map(|md| {
            json!({
                "name": md.name,
                "symbol": md.symbol,
                "shape": md.decoder.fixed_shape(),
                "input": if md.decoder.is_image() { "file" } else { "numbers or file" },
                "decoder": md.decoder,
            })
        })
        .collect();
    Json(json!({
        "format_version": m.format_version,
        "network": m.network,
        "task": m.input_spec.task,
        "classes": m.input_spec.classes,
        "modalities": modalities,
        "identity": m.identity,
    }))
}

async fn predict(axum::extract::State(s): axum::extract::State<Shared>, req: Request) -> Response {
    let started = Instant::now();
    let response = match answer(&s, req).await {
        Ok(r) => r,
        Err(e) => {
            s.metrics.errors.with_label_values(&[e.kind]).inc();
            e.into_response()
        }
    };
    s.metrics.requests.with_label_values(&[response.status().as_str()]).inc();
    s.metrics.latency.observe(started.elapsed().as_secs_f64());
    response
}

fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "too_large", "body", format!("over the server's --max-body: {text}"))
    } else {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_read",
            "body",
            format!("the body was not received in time or was cut: {text}"),
        )
    }
}

async fn answer(s: &Shared, req: Request) -> Result<Response, ApiError> {
    if !s.ready.load(Ordering::SeqCst) {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "model", "loading");
        e.retry_after = Some(1);
        return Err(e);
    }
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (instances, batch) = if multipart {
        (vec![read_multipart(s, req).await?], false)
    } else {
        let body =
            Bytes::from_request(req, s).await.map_err(|r| body_error(r.status(), r.body_text()))?;
        let batch = serde_json::from_slice::<Value>(&body)
            .ok()
            .is_some_and(|v| v.get("instances").is_some());
        (parse_request(&body)?, batch)
    };
    let state = s.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare_all(&state, instances))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "decoding", e.to_string())
        })??;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let presents: Vec<Vec<bool>> = prepared.iter().map(|p| p.present.clone()).collect();
    s.queue.submit(Job { samples: prepared, reply: tx }).map_err(|r| {
        let mut e = match r {
            Refused::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "queue",
                "the server is busy: retry",
            ),
            Refused::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "model",
                "the model thread has stopped",
            ),
        };
        e.retry_after = Some(1);
        e
    })?;
    let outputs = rx
        .await
        .map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "model", "shut down")
        })?
        .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "prediction", "model", m))?;
    let answers: Vec<Value> =
        outputs.into_iter().zip(&presents).map(|(o, p)| render(&s.metadata, o, p)).collect();
    let body = if batch {
        json!({"predictions": answers})
    } else {
        answers.into_iter().next().unwrap_or(Value::Null)
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// One instance from a multipart upload: each part is named by its modality and holds its
/// file (image, `.npy`, or text of numbers).
async fn read_multipart(s: &Shared, req: Request) -> Result<Instance, ApiError> {
    let mut mp = Multipart::from_request(req, s)
        .await
        .map_err(|r| ApiError::bad_request("body", r.body_text()))?;
    let mut inputs = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(body_error(e.status(), e.body_text())),
        };
        let name = field
            .name()
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request("body", "a part without a name"))?;
        let bytes = field.bytes().await.map_err(|e| body_error(e.status(), e.body_text()))?;
        inputs.push((name, RequestValue::File(bytes.to_vec())));
    }
    Ok(Instance { prefix: String::new(), inputs })
}

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Input { field, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", field, message)
        }
        other if other.is_user_input() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "inputs",
            error_chain(&other),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "model",
            error_chain(&other),
        ),
    }
}

/// Decodes every instance (files through the modality's decoder, from a private temporary
/// file removed right after).
fn prepare_all(s: &State, instances: Vec<Instance>) -> Result<Vec<Prepared>, ApiError> {
    instances
        .into_iter()
        .map(|inst| {
            let mut files = Vec::new();
            let mut raw = Vec::with_capacity(inst.inputs.len());
            for (name, value) in inst.inputs {
                match value {
                    RequestValue::Values { values, shape } => {
                        raw.push((name, RawInput::Values { values, shape }))
                    }
                    RequestValue::File(bytes) => {
                        let n = s.upload_seq.fetch_add(1, Ordering::Relaxed);
                        let path =
                            s.uploads.path().join(format!("{n}.{}", sniff_extension(&bytes)));
                        std::fs::write(&path, &bytes).map_err(|e| {
                            ApiError::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                "upload",
                                e.to_string(),
                            )
                        })?;
                        files.push(path.clone());
                        raw.push((name, RawInput::File(path)));
                    }
                }
            }
            let prepared = mmanet_deploy::prepare(&s.metadata, raw, &inst.prefix);
            for f in files {
                let _ = std::fs::remove_file(f);
            }
            // Messages name the private upload file: say "the uploaded file" instead.
            prepared.map_err(|e| {
                let mut api = deploy_error(e);
                let dir = s.uploads.path().display().to_string();
                if api.message.contains(&dir) {
                    api.message = api.message.replace(&dir, "<upload>");
                }
                api
            })
        })
        .collect()
}

fn render(meta: &ModelMetadata, output: Output, present: &[bool]) -> Value {
    let present: Vec<&str> = mmanet_deploy::present_modalities(&meta.input_spec, present)
        .map(|m| m.name.as_str())
        .collect();
    match output {
        Output::Classes(probs) => {
            let name =
                |k: usize| meta.input_spec.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
            let best = mmanet_deploy::predictor::best_class(&probs).0;
            let map: serde_json::Map<String, Value> =
                probs.iter().enumerate().map(|(k, p)| (name(k), json!(p))).collect();
            json!({"class": name(best), "probabilities": map, "present": present})
        }
        Output::LabelMap { height, width, labels } => {
            let png =
                mmanet_deploy::predictor::label_png(height, width, &labels).unwrap_or_default();
            json!({
                "label_map": {
                    "png_base64": base64::engine::general_purpose::STANDARD.encode(png),
                    "height": height,
                    "width": width,
                },
                "present": present,
            })
        }
    }
}
