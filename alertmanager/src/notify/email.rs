//! Email delivery over SMTP with `lettre` (plain, STARTTLS or TLS; AUTH).

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpTls;

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct SmtpTarget {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// AUTH user and password.
    pub auth: Option<(String, String)>,
    /// Sender address.
    pub from: String,
}

/// Splits `host:port`.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let p: u16 = p.parse().ok()?;
    if h.is_empty() {
        return None;
    }
    Some((h.trim_matches(['[', ']']).to_string(), p))
}

/// Sends one plain-text message to `to`. Errors are `(retryable, message)`.
pub async fn send(
    target: &SmtpTarget,
    to: &[String],
    subject: &str,
    body: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), (bool, String)> {
    let mut b = Message::builder()
        .from(
            target
                .from
                .parse()
                .map_err(|e| (false, format!("from {:?}: {e}", target.from)))?,
        )
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        b = b.to(t
            .trim()
            .parse()
            .map_err(|e| (false, format!("to {t:?}: {e}")))?);
    }
    let mut msg = b
        .body(body.to_string())
        .map_err(|e| (false, format!("building email: {e}")))?;
    for (k, v) in headers {
        let name = HeaderName::new_from_ascii(k.clone())
            .map_err(|e| (false, format!("header {k:?}: {e}")))?;
        msg.headers_mut()
            .insert_raw(HeaderValue::new(name, v.clone()));
    }
    let builder = match target.tls {
        SmtpTls::Plain => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.host.as_str())
        }
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&target.host)
            .map_err(|e| (false, format!("smtp: {e}")))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host)
            .map_err(|e| (false, format!("smtp: {e}")))?,
    };
    let mut builder = builder.port(target.port).timeout(Some(timeout));
    if let Some((u, p)) = &target.auth {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let transport = builder.build();
    transport.send(msg).await.map(|_| ()).map_err(|e| {
        let permanent = e.is_permanent();
        (
            !permanent,
            format!("smtp {}:{}: {e}", target.host, target.port),
        )
    })
}
