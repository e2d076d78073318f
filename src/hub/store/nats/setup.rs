//! Connecting to the NATS cluster and creating the stream and the buckets
//! when they are missing. A hub started while NATS is unreachable keeps
//! trying and says so, rather than exiting.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv, stream};
use async_nats::ServerAddr;

/// The stream that is the log.
pub const STREAM: &str = "MESYNC";
pub const HOSTS: &str = "mesync_hosts";
pub const SEEN: &str = "mesync_seen";

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub urls: Vec<String>,
    pub replicas: usize,
    pub retention: Duration,
    pub dedupe_window: Duration,
}

pub struct Opened {
    pub js: jetstream::Context,
    pub stream: stream::Stream,
    pub hosts: kv::Store,
    pub seen: kv::Store,
}

pub async fn open(cfg: &NatsConfig) -> anyhow::Result<Opened> {
    let addrs = cfg
        .urls
        .iter()
        .map(|u| {
            u.parse::<ServerAddr>()
                .with_context(|| format!("store: {u}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shown = cfg.urls.join(",");
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("lost the connection to NATS; reconnecting")
                }
                other => tracing::debug!("NATS: {other}"),
            }
        })
        .connect(addrs)
        .await
        .with_context(|| format!("connecting to NATS at {shown}"))?;
    let js = jetstream::new(client.clone());
    let mut pause = Duration::from_millis(200);
    let mut said = false;
    loop {
        if client.connection_state() == async_nats::connection::State::Connected {
            match create(&js, &client, cfg).await {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    tracing::warn!("NATS JetStream at {shown} is not ready ({e:#}); retrying");
                }
            }
        } else if said || pause >= Duration::from_secs(5) {
            tracing::warn!("waiting for NATS at {shown}; retrying");
            said = false;
        } else {
            said = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The replicas to ask for: the setting, capped at the cluster's size.
fn replicas(client: &async_nats::Client, cfg: &NatsConfig) -> usize {
    let info = client.server_info();
    let size = info.connect_urls.len().max(cfg.urls.len()).max(1);
    if cfg.replicas > size {
        tracing::warn!(
            store_replicas = cfg.replicas,
            servers = size,
            "store_replicas is larger than the NATS cluster; using {size}"
        );
    }
    cfg.replicas.min(size).min(5)
}

async fn create(
    js: &jetstream::Context,
    client: &async_nats::Client,
    cfg: &NatsConfig,
) -> anyhow::Result<Opened> {
    let replicas = replicas(client, cfg);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: STREAM.to_string(),
            subjects: vec!["mesync.>".to_string()],
            max_age: cfg.retention,
            duplicate_window: cfg.dedupe_window.min(cfg.retention),
            num_replicas: replicas,
            storage: stream::StorageType::File,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .context("creating the stream")?;
    let hosts = bucket(js, HOSTS, replicas).await?;
    let seen = bucket(js, SEEN, replicas).await?;
    tracing::info!(replicas, "NATS JetStream store ready");
    Ok(Opened {
        js: js.clone(),
        stream,
        hosts,
        seen,
    })
}

async fn bucket(js: &jetstream::Context, name: &str, replicas: usize) -> anyhow::Result<kv::Store> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    js.create_key_value(kv::Config {
        bucket: name.to_string(),
        history: 1,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating the bucket {name}"))
}
