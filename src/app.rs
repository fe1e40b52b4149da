//! Builds the shared, immutable [`App`] from a configuration file: config →
//! validate → rules → checks → TLS → upstream pool. A reload builds a new
//! App and swaps it in; sessions keep the one they started with.

use crate::action::Policy;
use crate::checks::{self, Check, Deps};
use crate::config::{Config, ConfigError};
use crate::dns::{HickoryLookup, Lookup};
use crate::mailauth::Authenticator;
use crate::maps::Domains;
use crate::passwd::Credentials;
use crate::rules::{self, content::Composites, content::ContentRules, Rules};
use crate::score::{Score, SymbolTable};
use crate::store::queue::{self, WriteQueue};
use crate::store::{memory::MemoryStore, Store};
use crate::upstream::Upstream;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Everything a session needs, built once per (re)load.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Every symbol's weight and action.
    pub symbols: SymbolTable,
    /// Composites, applied after all checks.
    pub composites: Composites,
    /// Per-group caps on the total.
    pub caps: Arc<BTreeMap<String, Score>>,
    /// The compiled content rules.
    pub content: Arc<ContentRules>,
    /// Threshold and spam action.
    pub policy: Policy,
    /// The checks, in run order.
    pub checks: Vec<Box<dyn Check>>,
    /// STARTTLS, when `[tls]` is configured.
    pub tls: Option<TlsAcceptor>,
    /// The pool of upstream connections.
    pub upstream: Arc<Upstream>,
    /// Shared state (kept across reloads while `[store]` is unchanged).
    pub store: Arc<dyn Store>,
    /// SPF/DKIM/DMARC, Authentication-Results and DKIM signing.
    pub auth: Arc<Authenticator>,
    /// SMTP AUTH users and their senders, when `[auth]` is configured.
    pub credentials: Option<Arc<Credentials>>,
    /// DNS for the envelope checks (kept across reloads while `[dns]` is unchanged).
    pub dns: Arc<dyn Lookup>,
    /// `relay.local_domains` and the domains of `relay.local_domains_file`.
    pub local_domains: Arc<Domains>,
    /// The message history (kept across reloads while `[store]` and
    /// `[history]` are unchanged).
    pub history: Arc<crate::history::History>,
    /// The anomaly hold: its holds and the counting of baselines.
    pub anomaly: Arc<crate::anomaly::Watch>,
    /// Store writes nobody waits for, off the hot path (kept with the store).
    pub writes: Arc<WriteQueue>,
    /// What this node read of the store a moment ago (`[store] memo`).
    pub recent: Arc<checks::recent::Recent>,
}

impl App {
    /// The AUTH lockout of the client at `ip`, when `[auth]` is configured.
    pub fn lockout(&self, ip: std::net::IpAddr) -> Option<crate::lockout::Lockout<'_>> {
        let config = self.config.auth.as_ref()?;
        Some(crate::lockout::Lockout::new(
            self.store.as_ref(),
            config,
            ip,
        ))
    }

    /// The active checks in the order they run, by phase: the start-up
    /// line and `check-config` print it.
    pub fn active_checks(&self) -> String {
        use crate::checks::Phase;
        [Phase::Helo, Phase::Mail, Phase::Rcpt, Phase::Data]
            .iter()
            .map(|p| {
                let names: Vec<&str> = self
                    .checks
                    .iter()
                    .filter(|c| c.phase() == *p)
                    .map(|c| c.name())
                    .collect();
                format!("{}: {}", p.name(), names.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The compiled content rules.
    pub fn content(&self) -> &ContentRules {
        &self.content
    }
}

impl App {
    /// Loads and builds from a configuration file.
    pub fn load(path: &Path, previous: Option<&App>) -> Result<App, ConfigError> {
        App::build(Config::load(path)?, previous)
    }

    /// Builds from a parsed configuration. The upstream pool of `previous`
    /// is kept when the upstream settings did not change.
    pub fn build(config: Config, previous: Option<&App>) -> Result<App, ConfigError> {
        let Rules {
            symbols: mut table,
            content,
            composites,
            caps,
        } = rules::load_dir(&config.scoring.rules_dir)?;
        let symbols = &mut table;
        for (name, score) in &config.scores {
            let def = symbols.get_mut(name).ok_or_else(|| {
                config.source.error_at(
                    score.span().start,
                    format!("[scores]: unknown symbol {name}"),
                )
            })?;
            score.get_ref().apply(def);
            if let Some(why) = crate::score::shadow_refused(name).filter(|_| def.shadow) {
                return Err(config
                    .source
                    .error_at(score.span().start, format!("[scores]: {why}")));
            }
        }
        let store = match previous {
            Some(p) if p.config.store == config.store => Arc::clone(&p.store),
            _ => Arc::new(crate::store::Metered(build_store(&config)?)),
        };
        let writes = match previous {
            Some(p) if p.config.store == config.store => Arc::clone(&p.writes),
            _ => Arc::new(WriteQueue::new(Arc::clone(&store), queue::CAPACITY)),
        };
        let history = match previous {
            Some(p) if p.config.store == config.store && p.config.history == config.history => {
                Arc::clone(&p.history)
            }
            _ => Arc::new(crate::history::History::new(&config, Arc::clone(&store))),
        };
        history.set_symbols(table.names().map(str::to_string).collect());
        let anomaly = Arc::new(crate::anomaly::Watch::new(&config, Arc::clone(&store)));
        let auth = Arc::new(Authenticator::new(&config)?);
        let credentials = config
            .auth
            .as_ref()
            .map(|a| Credentials::load(&a.passwd_file, a.sender_login_maps.as_deref()))
            .transpose()?
            .map(Arc::new);
        let dns: Arc<dyn Lookup> = match previous {
            Some(p) if p.config.dns == config.dns => Arc::clone(&p.dns),
            _ => Arc::new(HickoryLookup::new(&config, false)?),
        };
        let local_domains = Arc::new(Domains::new(
            &config.relay.local_domains,
            config.relay.local_domains_file.as_deref(),
        )?);
        let recent = Arc::new(checks::recent::Recent::new(
            Arc::clone(&store),
            config.store.memo.0,
        ));
        let deps = Deps {
            store: Arc::clone(&store),
            content: Arc::clone(&content),
            auth: Arc::clone(&auth),
            credentials: credentials.clone(),
            dns: Arc::clone(&dns),
            local_domains: Arc::clone(&local_domains),
            recent: Arc::clone(&recent),
        };
        let checks = checks::build(&config, &deps)?;
        let tls = config
            .tls
            .as_ref()
            .map(|t| tls_acceptor(&config, &t.cert, &t.key))
            .transpose()?;
        if tls.is_none() {
            if let Some(l) = config.server.listen.iter().find(|l| l.implicit_tls) {
                let message = format!(
                    "server.listen: {} has implicit_tls = true but there is no [tls] section",
                    l.address
                );
                return Err(config.source.error_at_key("server", "listen", message));
            }
        }
        let upstream = match previous {
            Some(p)
                if p.upstream.config() == &config.upstream
                    && p.config.server.hostname == config.server.hostname =>
            {
                Arc::clone(&p.upstream)
            }
            _ => Arc::new(Upstream::new(
                config.upstream.clone(),
                config.server.hostname.clone(),
            )),
        };
        let policy = Policy {
            threshold: Score::from_f64(config.scoring.threshold),
            spam_action: config.scoring.spam_action,
        };
        Ok(App {
            config,
            symbols: table,
            composites,
            caps,
            content,
            policy,
            checks,
            tls,
            upstream,
            store,
            auth,
            credentials,
            dns,
            local_domains,
            history,
            anomaly,
            writes,
            recent,
        })
    }
}

/// The configured store backend.
fn build_store(config: &Config) -> Result<Arc<dyn Store>, ConfigError> {
    match config.store.backend {
        crate::config::StoreBackend::Memory => Ok(Arc::new(MemoryStore::with_max_entries(
            config.store.max_entries,
        ))),
        crate::config::StoreBackend::Redis => {
            let s = &config.store;
            crate::store::redis::RedisStore::new(&s.redis_url, &s.key_prefix, s.timeout.0)
                .map(|r| Arc::new(r) as Arc<dyn Store>)
                .map_err(|e| {
                    config.source.error_at_key(
                        "store",
                        "redis_url",
                        format!("store.redis_url: {e}"),
                    )
                })
        }
    }
}

/// A TLS acceptor from PEM files; errors point at the `[tls]` key.
fn tls_acceptor(config: &Config, cert: &Path, key: &Path) -> Result<TlsAcceptor, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            config.source.error_at_key(
                "tls",
                "cert",
                format!("tls.cert: cannot load {}: {e}", cert.display()),
            )
        })?;
    if certs.is_empty() {
        let message = format!("tls.cert: no certificate in {}", cert.display());
        return Err(config.source.error_at_key("tls", "cert", message));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        config.source.error_at_key(
            "tls",
            "key",
            format!("tls.key: cannot load {}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| {
            config.source.error_at_key(
                "tls",
                "key",
                format!("tls: certificate and key do not work together: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
