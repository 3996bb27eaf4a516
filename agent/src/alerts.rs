//! Email alerts, like iSCSI-HA's: each transition, alarm and refusal mailed to the operator over
//! SMTP (`lettre`, STARTTLS with rustls, optional authentication), with a subject prefix and a
//! duplicate-suppression window so a flapping condition does not flood the mailbox.
//!
//! The mailer follows the same [`crate::events::EventBus`] as `iscsi-ha events`, from its own
//! task: a slow or unreachable mail server never holds up the daemon's loop. Send failures are logged and the
//! alert is dropped. The SMTP user name and password come from a separate TOML file that must not
//! be readable by group or others (mode 0600); a wider mode is refused at start and by
//! `check-config`. The password is kept only inside `lettre`'s credentials and never logged.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::events::AgentEvent;

/// `[alerts]` in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `[alerts.email]`: mail alerts; unset, none are sent.
    pub email: Option<EmailConfig>,
}

/// `[alerts.email]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name (also the name its TLS certificate must carry).
    pub server: String,
    /// SMTP port (default 587, submission).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Require STARTTLS (default true); false sends in clear text (a local relay only).
    #[serde(default = "default_starttls")]
    pub starttls: bool,
    /// PEM file of an extra CA to trust for the server's certificate (besides the system's).
    pub ca_file: Option<PathBuf>,
    /// TOML file with `username` and `password`, mode 0600; unset, no authentication.
    pub credentials: Option<PathBuf>,
    /// Sender, e.g. `"iscsi-ha <iscsi-ha@host1.example>"`.
    pub from: String,
    /// Recipients, at least one.
    pub to: Vec<String>,
    /// Put before every subject (default `[iscsi-ha]`).
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// An alert with the same subject as one sent less than this many seconds ago is not sent
    /// again, only counted in the next one sent after the window (default 900; 0 sends all).
    #[serde(default = "default_suppress")]
    pub suppress_s: u64,
}

fn default_port() -> u16 {
    587
}
fn default_starttls() -> bool {
    true
}
fn default_prefix() -> String {
    "[iscsi-ha]".into()
}
fn default_suppress() -> u64 {
    900
}

/// Why mail alerts cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The credentials file is readable by group or others.
    #[error("{path}: mode {mode:04o} lets other users read the SMTP password; chmod 600 it")]
    SecretMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials file is not `username = "…"` / `password = "…"` (the parser's message
    /// is not repeated: it could quote the password).
    #[error("{0}: expected exactly username = \"...\" and password = \"...\"")]
    SecretFormat(PathBuf),
    /// An address, the CA file or the TLS setup was refused.
    #[error("alerts.email.{key}: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The semantic checks of `[alerts.email]` that need no file: the dotted key and the reason.
pub fn validate(e: &EmailConfig) -> Result<(), (String, String)> {
    let bad = |k: &str, r: String| Err((format!("alerts.email.{k}"), r));
    if e.server.trim().is_empty() {
        return bad("server", "must not be empty".into());
    }
    if let Err(err) = e.from.parse::<Mailbox>() {
        return bad("from", format!("not a mail address: {err}"));
    }
    if e.to.is_empty() {
        return bad("to", "at least one recipient".into());
    }
    for t in &e.to {
        if let Err(err) = t.parse::<Mailbox>() {
            return bad("to", format!("{t:?} is not a mail address: {err}"));
        }
    }
    for (k, p) in [("credentials", &e.credentials), ("ca_file", &e.ca_file)] {
        if p.as_ref().is_some_and(|p| !p.is_absolute()) {
            return bad(k, "must be an absolute path".into());
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Secret {
    username: String,
    password: String,
}

/// Read the credentials file, refusing one that group or others may read.
fn credentials(path: &Path) -> Result<Credentials, AlertError> {
    let read = |source| AlertError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AlertError::SecretMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let s: Secret =
        toml::from_str(&text).map_err(|_| AlertError::SecretFormat(path.to_path_buf()))?;
    Ok(Credentials::new(s.username, s.password))
}

/// Sends alerts for the events it follows.
pub struct Mailer {
    /// Built at the first alert: with STARTTLS that loads the system's root certificates, time
    /// and memory a starting or idle agent does not need.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    /// What the transport is built from, checked by [`Mailer::new`].
    server: String,
    port: u16,
    starttls: bool,
    /// The extra CA certificate (PEM), already parsed once.
    ca_pem: Option<Vec<u8>>,
    credentials: Option<Credentials>,
    from: Mailbox,
    to: Vec<Mailbox>,
    prefix: String,
    window: Duration,
    /// Per subject: when last sent, and how many were suppressed since.
    sent: HashMap<String, (Instant, u32)>,
}

impl std::fmt::Debug for Mailer {
    // The transport holds the credentials: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Check the settings and read the credentials and CA files; nothing is sent or connected,
    /// and the transport is built at the first alert ([`Mailer::transport`]).
    pub fn new(e: &EmailConfig) -> Result<Mailer, AlertError> {
        let invalid = |key, reason: String| AlertError::Invalid { key, reason };
        validate(e).map_err(|(_, reason)| invalid("to/from", reason))?;
        let ca_pem = match (&e.ca_file, e.starttls) {
            (Some(ca), true) => {
                let pem = std::fs::read(ca).map_err(|source| AlertError::Read {
                    path: ca.clone(),
                    source,
                })?;
                Certificate::from_pem(&pem).map_err(|err| invalid("ca_file", err.to_string()))?;
                Some(pem)
            }
            _ => None,
        };
        let credentials = e.credentials.as_deref().map(credentials).transpose()?;
        let parse = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|err| invalid("to", err.to_string()))
        };
        Ok(Mailer {
            transport: None,
            server: e.server.clone(),
            port: e.port,
            starttls: e.starttls,
            ca_pem,
            credentials,
            from: parse(&e.from)?,
            to: e.to.iter().map(|t| parse(t)).collect::<Result<_, _>>()?,
            prefix: e.subject_prefix.clone(),
            window: Duration::from_secs(e.suppress_s),
            sent: HashMap::new(),
        })
    }

    /// Mail alerts for the events from `rx` until the bus closes.
    pub async fn run(mut self, mut rx: broadcast::Receiver<AgentEvent>) {
        while let Some(ev) = crate::events::next(&mut rx).await {
            let Some((subject, body)) = alert(&ev) else {
                continue;
            };
            let subject = format!("{} {subject}", self.prefix);
            let now = Instant::now();
            let mut body = body;
            match self.sent.get_mut(&subject) {
                Some((at, n)) if now.duration_since(*at) < self.window => {
                    *n += 1;
                    info!(%subject, "alert suppressed (same subject within alerts.email.suppress_s)");
                    continue;
                }
                Some((_, n)) if *n > 0 => {
                    body.push_str(&format!(
                        "\n{n} more alert(s) with this subject were suppressed since the last one.\n"
                    ));
                }
                _ => {}
            }
            self.sent.insert(subject.clone(), (now, 0));
            match self.send(&subject, body).await {
                Ok(()) => info!(%subject, "alert mailed"),
                Err(e) => warn!(%subject, error = %e, "alert not mailed"),
            }
        }
    }

    /// The SMTP transport, built on first use (with STARTTLS: the system's root certificates
    /// plus `ca_file`).
    ///
    /// # Errors
    /// The TLS setup failed (no usable root certificate, say).
    pub fn transport(&mut self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, AlertError> {
        let t = match self.transport.take() {
            Some(t) => t,
            None => self.build()?,
        };
        Ok(self.transport.insert(t))
    }

    fn build(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, AlertError> {
        {
            let mut b =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.server.as_str())
                    .port(self.port)
                    .timeout(Some(Duration::from_secs(30)));
            if self.starttls {
                let invalid = |key, err: lettre::transport::smtp::Error| AlertError::Invalid {
                    key,
                    reason: err.to_string(),
                };
                let mut tls = TlsParameters::builder(self.server.clone());
                if let Some(pem) = &self.ca_pem {
                    let cert = Certificate::from_pem(pem).map_err(|e| invalid("ca_file", e))?;
                    tls = tls.add_root_certificate(cert);
                }
                let tls = tls.build_rustls().map_err(|e| invalid("starttls", e))?;
                b = b.tls(Tls::Required(tls));
            }
            if let Some(c) = &self.credentials {
                b = b.credentials(c.clone());
            }
            Ok(b.build())
        }
    }

    /// Whether the transport has been built (by the first alert).
    pub fn transport_built(&self) -> bool {
        self.transport.is_some()
    }

    async fn send(&mut self, subject: &str, body: String) -> Result<(), String> {
        let mut m = Message::builder().from(self.from.clone()).subject(subject);
        for t in &self.to {
            m = m.to(t.clone());
        }
        let msg = m.body(body).map_err(|e| e.to_string())?;
        self.transport()
            .map_err(|e| e.to_string())?
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The subject (without prefix) and body of the alert for an event, if it warrants one.
pub fn alert(ev: &AgentEvent) -> Option<(String, String)> {
    match ev {
        AgentEvent::Transition { node, record } => {
            let mut body = format!(
                "Node {node}: transition #{} {} took {:.1} ms: {}\n\nStages:\n",
                record.id,
                record.kind,
                record.total_micros as f64 / 1000.0,
                record.result
            );
            for s in &record.stages {
                body.push_str(&format!(
                    "  {}{} {} {:.2} ms{}\n",
                    if s.rollback { "rollback " } else { "" },
                    s.stage.name(),
                    s.objects.join(","),
                    s.micros as f64 / 1000.0,
                    if s.ok { "" } else { " FAILED" }
                ));
            }
            let result = record.result.label();
            Some((format!("{node}: {} {result}", record.kind), body))
        }
        AgentEvent::Alarm { node, reason, .. } => Some((
            format!("{node}: ALARM {}", short(reason)),
            format!("Node {node} raised an alarm:\n\n{reason}\n\nSee `iscsi-ha status`.\n"),
        )),
        AgentEvent::Refusal { node, reason, .. } => Some((
            format!("{node}: refused {}", short(reason)),
            format!("Node {node} refused to act:\n\n{reason}\n\nSee `iscsi-ha status`.\n"),
        )),
        _ => None,
    }
}

/// A reason cut to fit a subject line.
fn short(reason: &str) -> String {
    const MAX: usize = 80;
    match reason.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &reason[..i]),
        None => reason.to_string(),
    }
}
